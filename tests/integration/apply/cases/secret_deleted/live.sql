-- A managed secret deleted by hand is created again.
DELETE FROM vault.secrets WHERE name = 'service_role_key';
