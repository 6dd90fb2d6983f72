-- A secret's description changed in the Vault by hand.
SELECT vault.update_secret(id, NULL, NULL, 'edited by hand') FROM vault.secrets WHERE name = 'project_url';
