-- A secret's value changed in the Vault by hand.
SELECT vault.update_secret(id, 'changed-by-hand') FROM vault.secrets WHERE name = 'cron_secret';
