-- A queued write is applied as a session of the role that queued it would
-- apply it: session_user, current_user, is_superuser and search_path are
-- that session's.  Each case is compared with the same write made directly
-- (asyncwrite.enabled = off) in a new session of the role.
\set VERBOSITY default
\set SHOW_CONTEXT never
\i test/sql/include/try.sql
GRANT EXECUTE ON FUNCTION try(text) TO PUBLIC;
SELECT current_user AS su, current_database() AS db \gset

CREATE ROLE aw_id_writer LOGIN;
CREATE ROLE aw_id_plain LOGIN;

-- The audit table and trigger of an application schema, written the usual
-- way: unqualified names, no SET search_path on the function.
CREATE SCHEMA aw_id_app;
GRANT USAGE ON SCHEMA aw_id_app TO PUBLIC;
CREATE TABLE aw_id_app.audit (id int, via text, cur name, sess name,
                              su text, path text);
GRANT INSERT ON aw_id_app.audit TO PUBLIC;
CREATE FUNCTION aw_id_app.audit_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO audit VALUES (NEW.id, NEW.via, current_user, session_user,
                              current_setting('is_superuser'),
                              current_setting('search_path'));
    RETURN NEW;
END $$;

-- docs: a row's owner must be the session user (row-level security).
CREATE TABLE id_docs (id int, owner name, via text);
GRANT INSERT ON id_docs TO aw_id_writer, aw_id_plain;
ALTER TABLE id_docs ENABLE ROW LEVEL SECURITY;
CREATE POLICY id_docs_own ON id_docs FOR INSERT WITH CHECK (owner = session_user);
CREATE TRIGGER id_docs_audit BEFORE INSERT ON id_docs
    FOR EACH ROW EXECUTE FUNCTION aw_id_app.audit_row();

-- admin_only: only a superuser's session may insert (policy on is_superuser).
CREATE TABLE id_admin_only (id int);
GRANT INSERT ON id_admin_only TO aw_id_writer;
ALTER TABLE id_admin_only ENABLE ROW LEVEL SECURITY;
CREATE POLICY id_admin ON id_admin_only FOR INSERT
    WITH CHECK (current_setting('is_superuser')::boolean);

-- tenants: a policy on a setting the role's sessions get (ALTER ROLE SET).
CREATE TABLE id_tenant (id int, tenant text);
GRANT INSERT ON id_tenant TO aw_id_writer;
ALTER TABLE id_tenant ENABLE ROW LEVEL SECURITY;
CREATE POLICY id_tenant_own ON id_tenant FOR INSERT
    WITH CHECK (tenant = current_setting('app.tenant', true));
ALTER ROLE aw_id_writer SET app.tenant = 'acme';

-- The most specific search_path setting wins, as at connection start.
ALTER ROLE aw_id_writer SET search_path = public;
SELECT format('ALTER ROLE aw_id_writer IN DATABASE %I SET search_path = aw_id_app, public', :'db') \gexec

\c - aw_id_writer
SHOW search_path;
SELECT asyncwrite.insert('id_docs', '{"id": 1, "owner": "aw_id_writer", "via": "queued"}');
SELECT asyncwrite.insert('id_docs', jsonb_build_object('id', 2, 'owner', :'su', 'via', 'queued'));
SELECT asyncwrite.insert('id_admin_only', '{"id": 1}');
SELECT asyncwrite.insert('id_tenant', '{"id": 1, "tenant": "acme"}');
SELECT asyncwrite.insert('id_tenant', '{"id": 2, "tenant": "other"}');
SELECT asyncwrite.flush();
-- The oracle: the same writes made directly.
SET asyncwrite.enabled = off;
SELECT try($$SELECT asyncwrite.insert('id_docs', '{"id": 1, "owner": "aw_id_writer", "via": "direct"}')$$);
SELECT try(format($$SELECT asyncwrite.insert('id_docs', '{"id": 2, "owner": %s, "via": "direct"}')$$, to_json(:'su'::text)));
SELECT try($$SELECT asyncwrite.insert('id_admin_only', '{"id": 1}')$$);
SELECT try($$SELECT asyncwrite.insert('id_tenant', '{"id": 11, "tenant": "acme"}')$$);
SELECT try($$SELECT asyncwrite.insert('id_tenant', '{"id": 12, "tenant": "other"}')$$);
RESET asyncwrite.enabled;

-- A role without settings: the server's default search_path.
\c - aw_id_plain
SHOW search_path;
SELECT asyncwrite.insert('id_docs', '{"id": 3, "owner": "aw_id_plain", "via": "queued"}');
SELECT asyncwrite.flush();
SET asyncwrite.enabled = off;
SELECT try($$SELECT asyncwrite.insert('id_docs', '{"id": 3, "owner": "aw_id_plain", "via": "direct"}')$$);
RESET asyncwrite.enabled;

\c - :su
-- Queued and direct writes gave the same rows, seen by the trigger alike:
-- the session user's own row only, never a superuser's session.
SELECT id, owner, via FROM id_docs ORDER BY id, via;
SELECT id, via, cur, sess, su, path FROM aw_id_app.audit ORDER BY id, via;
SELECT count(*) AS admin_rows FROM id_admin_only;
SELECT * FROM id_tenant ORDER BY id;
SELECT d.role::regrole AS role, d.target::regclass AS target, d.sqlstate, d.message
  FROM asyncwrite.dead_letters d
 WHERE d.target IN ('id_docs'::regclass, 'id_admin_only'::regclass, 'id_tenant'::regclass)
 ORDER BY d.id;
-- The plain role's trigger found "audit" through the database's setting.
SELECT format('ALTER DATABASE %I SET search_path = aw_id_app, public', :'db') \gexec
\c - aw_id_plain
SELECT asyncwrite.insert('id_docs', '{"id": 4, "owner": "aw_id_plain", "via": "queued"}');
SELECT asyncwrite.flush();
\c - :su
SELECT format('ALTER DATABASE %I RESET search_path', :'db') \gexec
SELECT id, via, cur, sess, su, path FROM aw_id_app.audit WHERE id = 4;

-- Column privileges: a role that may insert into only some columns gives
-- only those; the other columns take their defaults, as in its INSERT
-- naming only its columns.
\c - :su
CREATE TABLE id_cols (id int PRIMARY KEY, note text, by_role name DEFAULT current_user,
                      secret text DEFAULT 'kept', n int NOT NULL DEFAULT 0);
GRANT INSERT (id, note, n), UPDATE (note, n), SELECT (id, n) ON id_cols TO aw_id_writer;
-- An upsert's DO UPDATE SET note = EXCLUDED.note reads note: SELECT on it too.
GRANT SELECT (note) ON id_cols TO aw_id_writer;
\c - aw_id_writer
SELECT asyncwrite.insert('id_cols', '{"id": 1, "note": "queued"}');
SELECT asyncwrite.upsert('id_cols', '{"id": 2, "note": "queued"}');
SELECT asyncwrite.upsert('id_cols', '{"id": 2, "note": "queued again"}');
SELECT asyncwrite.increment('id_cols', '{"id": 3}', '{"n": 5}');
SELECT asyncwrite.increment('id_cols', '{"id": 3}', '{"n": 2}');
SELECT try($$SELECT asyncwrite.insert('id_cols', '{"id": 4, "secret": "mine"}')$$);
SELECT try($$SELECT asyncwrite.upsert('id_cols', '{"id": 4, "by_role": "x"}')$$);
SELECT asyncwrite.flush();
-- The oracle: the role's own INSERTs naming its columns, and the same
-- calls made directly.
INSERT INTO id_cols (id, note) VALUES (11, 'direct');
SELECT try($$INSERT INTO id_cols (id, secret) VALUES (14, 'mine')$$);
SET asyncwrite.enabled = off;
SELECT asyncwrite.insert('id_cols', '{"id": 21, "note": "direct"}');
SELECT asyncwrite.upsert('id_cols', '{"id": 22, "note": "direct"}');
SELECT asyncwrite.upsert('id_cols', '{"id": 22, "note": "direct again"}');
SELECT asyncwrite.increment('id_cols', '{"id": 23}', '{"n": 5}');
SELECT asyncwrite.increment('id_cols', '{"id": 23}', '{"n": 2}');
RESET asyncwrite.enabled;
\c - :su
SELECT * FROM id_cols ORDER BY id;
-- Such a write that failed is retried with the same columns.
\c - aw_id_writer
SELECT asyncwrite.insert('id_cols', '{"id": 1, "note": "again"}');
SELECT asyncwrite.flush();
\c - :su
SELECT role, sqlstate, key_columns, set_columns FROM asyncwrite.dead_letters
 WHERE target = 'id_cols'::regclass;
DELETE FROM id_cols WHERE id = 1;
\c - aw_id_writer
SELECT asyncwrite.retry_failed(id) FROM asyncwrite.dead_letters
 WHERE target = 'id_cols'::regclass;
SELECT asyncwrite.flush();
\c - :su
SELECT * FROM id_cols WHERE id = 1;
SELECT count(*) AS dead_left FROM asyncwrite.dead_letters WHERE target = 'id_cols'::regclass;
-- So is an upsert, and an insert giving no column (all defaults, as
-- INSERT ... DEFAULT VALUES, which needs INSERT on some column).
ALTER TABLE id_cols ADD CONSTRAINT id_cols_note CHECK (note <> 'bad');
\c - aw_id_writer
SELECT asyncwrite.upsert('id_cols', '{"id": 5, "note": "bad"}');
SELECT asyncwrite.flush();
\c - :su
ALTER TABLE id_cols DROP CONSTRAINT id_cols_note;
ALTER TABLE id_cols ALTER COLUMN id SET DEFAULT 99;
\c - aw_id_writer
SELECT asyncwrite.retry_failed(id) FROM asyncwrite.dead_letters
 WHERE target = 'id_cols'::regclass;
SELECT asyncwrite.insert('id_cols', '{}');
SELECT asyncwrite.flush();
\c - :su
SELECT * FROM id_cols WHERE id IN (5, 99) ORDER BY id;
SELECT count(*) AS dead_left FROM asyncwrite.dead_letters WHERE target = 'id_cols'::regclass;

-- A dead letter's payload is made as the role too: a cast to json of the
-- role's own type runs as that role, never as the worker's superuser.
\c - :su
CREATE SCHEMA aw_id_own AUTHORIZATION aw_id_writer;
\c - aw_id_writer
SET search_path = aw_id_own;
CREATE TYPE mood AS ENUM ('sad');
CREATE TABLE cast_seen (cur name, sess name, su text);
CREATE FUNCTION mood_json(mood) RETURNS json LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO aw_id_own.cast_seen VALUES (current_user, session_user,
                                           current_setting('is_superuser'));
    RETURN to_json($1::text);
END $$;
CREATE CAST (mood AS json) WITH FUNCTION mood_json(mood);
CREATE TABLE moods (id int PRIMARY KEY, m mood, v int CHECK (v > 0));
SELECT asyncwrite.insert('aw_id_own.moods', '{"id": 1, "m": "sad", "v": -1}');
SELECT asyncwrite.flush();
SELECT * FROM cast_seen;
SELECT payload, sqlstate FROM asyncwrite.dead_letters
 WHERE target = 'aw_id_own.moods'::regclass;
-- retry_failed() by a superuser converts the row again as that role too:
-- the role's domain check (or a default added since) never runs as the
-- superuser.
CREATE TABLE retry_seen (cur name);
CREATE FUNCTION probe(int) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO aw_id_own.retry_seen VALUES (current_user);
    RETURN true;
END $$;
CREATE DOMAIN checked AS int CHECK (aw_id_own.probe(VALUE));
CREATE TABLE retried (a checked, b int CHECK (b > 0));
SELECT asyncwrite.insert('aw_id_own.retried', '{"a": 1, "b": -1}');
SELECT asyncwrite.flush();
ALTER TABLE retried DROP CONSTRAINT retried_b_check;
DELETE FROM retry_seen;
\c - :su
SELECT asyncwrite.retry_failed(id) FROM asyncwrite.dead_letters
 WHERE target = 'aw_id_own.retried'::regclass;
SELECT asyncwrite.flush();
SELECT cur, count(*) > 0 AS probed FROM aw_id_own.retry_seen GROUP BY cur;
SELECT * FROM aw_id_own.retried;
SELECT rolsuper FROM pg_roles WHERE rolname = 'aw_id_writer';
DROP SCHEMA aw_id_own CASCADE;

-- A write whose role is dropped while it waits fails; it is never applied
-- as a role that no longer exists.
CREATE ROLE aw_id_gone;
CREATE TABLE id_public (id int);
GRANT INSERT ON id_public TO PUBLIC;
SELECT asyncwrite.pause();
SET ROLE aw_id_gone;
SELECT asyncwrite.insert('id_public', '{"id": 1}');
RESET ROLE;
SELECT oid AS gone_oid FROM pg_roles WHERE rolname = 'aw_id_gone' \gset
DROP ROLE aw_id_gone;
SELECT asyncwrite.resume();
SELECT asyncwrite.flush();
SELECT count(*) AS applied FROM id_public;
SELECT d.role = :gone_oid AS same_role, d.payload, d.sqlstate,
       replace(d.message, :'gone_oid', 'N') AS message, d.detail
  FROM asyncwrite.dead_letters d WHERE d.target = 'id_public'::regclass;

DELETE FROM asyncwrite.dead_letters;
DROP TABLE id_public, id_admin_only, id_docs, id_cols, id_tenant;
ALTER ROLE aw_id_writer RESET app.tenant;
DROP SCHEMA aw_id_app CASCADE;
SELECT format('ALTER ROLE aw_id_writer IN DATABASE %I RESET search_path', :'db') \gexec
DROP ROLE aw_id_writer, aw_id_plain;
DROP FUNCTION try(text);
