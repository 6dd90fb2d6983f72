/* localdb stand-in for supabase_vault 0.3.1, installed into the local cluster's private tree.
 *
 * Same tables, view, function signatures, defaults, index name and privileges as upstream
 * (supabase/vault sql/supabase_vault--0.3.0.sql; 0.3.1 has no SQL changes). Upstream encrypts with
 * pgsodium's C functions; here a per-cluster random key, made at CREATE EXTENSION time and readable
 * only by the extension's owner, drives a SHA-256 keystream (XOR) plus a 16-byte tag, stored as
 * base64. Not real cryptography: it only guarantees what code under test can observe, namely that
 * `secret` is never the plaintext and that rows inserted without `create_secret` cannot be read back.
 */

\echo Use "CREATE EXTENSION supabase_vault" to load this file. \quit

CREATE TABLE vault._standin_key (key bytea NOT NULL);
REVOKE ALL ON vault._standin_key FROM PUBLIC;
INSERT INTO vault._standin_key
SELECT sha256(uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid())
              || convert_to(clock_timestamp()::text, 'UTF8'));

-- keystream block i = sha256(key || nonce || additional || i); the tag authenticates the lot
CREATE FUNCTION vault._standin_xor(data bytea, nonce bytea, additional bytea)
RETURNS bytea
LANGUAGE plpgsql IMMUTABLE SECURITY DEFINER SET search_path = '' AS $$
DECLARE
    k bytea := (SELECT key FROM vault._standin_key);
    result bytea := data;
    block bytea;
BEGIN
    FOR i IN 0 .. length(data) - 1 LOOP
        IF i % 32 = 0 THEN
            block := sha256(k || coalesce(nonce, '') || coalesce(additional, '') || int4send(i / 32));
        END IF;
        result := set_byte(result, i, get_byte(data, i) # get_byte(block, i % 32));
    END LOOP;
    RETURN result;
END
$$;

CREATE FUNCTION vault._standin_tag(ciphertext bytea, nonce bytea, additional bytea)
RETURNS bytea
LANGUAGE sql IMMUTABLE SECURITY DEFINER SET search_path = '' AS $$
    SELECT substring(sha256((SELECT key FROM vault._standin_key) || '\x746167'::bytea
                            || coalesce(nonce, '') || coalesce(additional, '') || ciphertext)
                     FROM 1 FOR 16)
$$;

CREATE FUNCTION vault._crypto_aead_det_encrypt(message bytea, additional bytea, key_id bigint,
                                               context bytea = 'pgsodium', nonce bytea = NULL)
RETURNS bytea
LANGUAGE plpgsql IMMUTABLE SECURITY DEFINER SET search_path = '' AS $$
DECLARE
    ciphertext bytea := vault._standin_xor(message, nonce, additional);
BEGIN
    RETURN ciphertext || vault._standin_tag(ciphertext, nonce, additional);
END
$$;

CREATE FUNCTION vault._crypto_aead_det_decrypt(message bytea, additional bytea, key_id bigint,
                                               context bytea = 'pgsodium', nonce bytea = NULL)
RETURNS bytea
LANGUAGE plpgsql IMMUTABLE SECURITY DEFINER SET search_path = '' AS $$
DECLARE
    body bytea;
BEGIN
    IF length(message) < 16 THEN
        RAISE EXCEPTION 'pgsodium_crypto_aead_det_decrypt_by_id: invalid message';
    END IF;
    body := substring(message FROM 1 FOR length(message) - 16);
    IF substring(message FROM length(message) - 15) <> vault._standin_tag(body, nonce, additional) THEN
        RAISE EXCEPTION 'pgsodium_crypto_aead_det_decrypt_by_id: invalid ciphertext';
    END IF;
    RETURN vault._standin_xor(body, nonce, additional);
END
$$;

CREATE FUNCTION vault._crypto_aead_det_noncegen()
RETURNS bytea
LANGUAGE sql VOLATILE AS $$
    SELECT uuid_send(gen_random_uuid())
$$;

CREATE TABLE vault.secrets (
  id uuid     PRIMARY KEY DEFAULT gen_random_uuid(),
  name        text,
  description text NOT NULL default '',
  secret      text NOT NULL,
  key_id      uuid,
  nonce       bytea DEFAULT vault._crypto_aead_det_noncegen(),
  created_at  timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
  updated_at  timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP
);

COMMENT ON TABLE vault.secrets IS 'Table with encrypted `secret` column for storing sensitive information on disk.';

CREATE UNIQUE INDEX ON vault.secrets USING btree (name) WHERE name IS NOT NULL;

CREATE VIEW vault.decrypted_secrets AS
SELECT s.id,
  s.name,
  s.description,
  s.secret,
  convert_from(
    vault._crypto_aead_det_decrypt(
      message := decode(s.secret, 'base64'::text),
      additional := convert_to(s.id::text, 'utf8'),
      key_id := 0,
      context := 'pgsodium'::bytea,
      nonce := s.nonce
    ),
    'utf8'::name
  ) AS decrypted_secret,
  s.key_id,
  s.nonce,
  s.created_at,
  s.updated_at
FROM vault.secrets s;

-- SECURITY DEFINER so that callers need only EXECUTE here, not INSERT/UPDATE on vault.secrets.
CREATE FUNCTION vault.create_secret(
  new_secret text,
  new_name text = NULL,
  new_description text = '',
  -- unused
  new_key_id uuid = NULL
)
RETURNS uuid
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $$
DECLARE
  rec record;
BEGIN
  INSERT INTO vault.secrets (secret, name, description)
  VALUES (
    new_secret,
    new_name,
    new_description
  )
  RETURNING * INTO rec;
  UPDATE vault.secrets s
  SET secret = encode(vault._crypto_aead_det_encrypt(
    message := convert_to(rec.secret, 'utf8'),
    additional := convert_to(s.id::text, 'utf8'),
    key_id := 0,
    context := 'pgsodium'::bytea,
    nonce := rec.nonce
  ), 'base64')
  WHERE id = rec.id;
  RETURN rec.id;
END
$$;

CREATE FUNCTION vault.update_secret(
  secret_id uuid,
  new_secret text = NULL,
  new_name text = NULL,
  new_description text = NULL,
  -- unused
  new_key_id uuid = NULL
)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $$
BEGIN
  UPDATE vault.secrets s
  SET
    secret = CASE WHEN new_secret IS NULL THEN s.secret
                  ELSE encode(vault._crypto_aead_det_encrypt(
                    message := convert_to(new_secret, 'utf8'),
                    additional := convert_to(s.id::text, 'utf8'),
                    key_id := 0,
                    context := 'pgsodium'::bytea,
                    nonce := s.nonce
                  ), 'base64') END,
    name = coalesce(new_name, s.name),
    description = coalesce(new_description, s.description),
    updated_at = now()
  WHERE s.id = secret_id;
END
$$;

-- Nothing for PUBLIC: Supabase grants `postgres` what it needs after CREATE EXTENSION.
REVOKE ALL ON ALL TABLES IN SCHEMA vault FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA vault FROM PUBLIC;

SELECT pg_catalog.pg_extension_config_dump('vault.secrets', '');
