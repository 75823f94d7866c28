-- Writes are applied as the role that queued them: privileges and
-- row-level security are those of that role, never the worker's.
\set VERBOSITY default
\set SHOW_CONTEXT never
-- Writes are queued at the call here (ids at once, applied even on
-- rollback); transactional submission is tested in transactional.sql.
SET asyncwrite.transactional = off;

CREATE ROLE aw_sec_writer;
CREATE ROLE aw_sec_other;
CREATE TABLE sec_t (id int PRIMARY KEY, owner name NOT NULL DEFAULT current_user, note text);
GRANT INSERT, SELECT ON sec_t TO aw_sec_writer, aw_sec_other;

-- Row-level security: the writer may only insert rows it owns.
ALTER TABLE sec_t ENABLE ROW LEVEL SECURITY;
CREATE POLICY sec_own ON sec_t FOR INSERT WITH CHECK (owner = current_user);
CREATE POLICY sec_read ON sec_t FOR SELECT USING (true);

-- A trigger that records which role the insert ran as.
CREATE TABLE sec_log (id int, ran_as name, ran_as_superuser boolean);
GRANT INSERT ON sec_log TO aw_sec_writer, aw_sec_other;
CREATE FUNCTION sec_log_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.sec_log VALUES (NEW.id, current_user,
        (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user));
    RETURN NEW;
END $$;
CREATE TRIGGER sec_log AFTER INSERT ON sec_t FOR EACH ROW EXECUTE FUNCTION sec_log_insert();

SELECT failed AS f0 FROM asyncwrite.stats WHERE database = current_database() \gset
SELECT count(*) AS d0 FROM asyncwrite.dead_letters \gset

SET ROLE aw_sec_writer;
SELECT asyncwrite.insert('sec_t', '{"id": 1, "note": "own row"}') > 0 AS queued;
SELECT asyncwrite.insert('sec_t', '{"id": 2, "owner": "aw_sec_other", "note": "not mine"}') > 0 AS queued;
SELECT asyncwrite.flush();
RESET ROLE;

-- The own row is applied, as the writer; the other violates the policy.
SELECT id, owner, note FROM sec_t ORDER BY id;
SELECT id, ran_as, ran_as_superuser FROM sec_log ORDER BY id;
SELECT payload->>'id' AS id, role::regrole AS role, sqlstate, message
  FROM asyncwrite.dead_letters d ORDER BY d.id OFFSET :d0;

-- A privilege revoked between queueing and applying: the write fails.
SELECT asyncwrite.pause();
SET ROLE aw_sec_writer;
SELECT asyncwrite.insert('sec_t', '{"id": 3}') > 0 AS queued;
RESET ROLE;
REVOKE INSERT ON sec_t FROM aw_sec_writer;
SELECT asyncwrite.resume();
SELECT asyncwrite.flush();
SELECT count(*) AS row_3 FROM sec_t WHERE id = 3;
SELECT payload->>'id' AS id, role::regrole AS role, sqlstate, message
  FROM asyncwrite.dead_letters d ORDER BY d.id OFFSET :d0 + 1;
SELECT failed - :f0 AS failed FROM asyncwrite.stats WHERE database = current_database();

-- Dead letters are visible to the role that queued them only.
SET ROLE aw_sec_other;
SELECT count(*) AS others_see FROM asyncwrite.dead_letters;
RESET ROLE;
SET ROLE aw_sec_writer;
SELECT count(*) AS writer_sees FROM asyncwrite.dead_letters;
RESET ROLE;

-- No privilege can be gained through a target's trigger: the worker's
-- own superuser role cannot be taken back with SET ROLE or RESET ROLE.
CREATE TABLE sec_escape (id int);
GRANT INSERT ON sec_escape TO aw_sec_writer;
CREATE FUNCTION sec_escape_try() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.id = 1 THEN RESET ROLE; END IF;
    IF NEW.id = 2 THEN SET ROLE postgres; END IF;
    IF NEW.id = 3 THEN SET SESSION AUTHORIZATION DEFAULT; END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER sec_escape BEFORE INSERT ON sec_escape FOR EACH ROW EXECUTE FUNCTION sec_escape_try();
SELECT count(*) AS d1 FROM asyncwrite.dead_letters \gset
SET ROLE aw_sec_writer;
SELECT count(asyncwrite.insert('sec_escape', jsonb_build_object('id', g))) FROM generate_series(1, 4) g;
SELECT asyncwrite.flush();
RESET ROLE;
SELECT id FROM sec_escape ORDER BY id;
SELECT payload->>'id' AS id, sqlstate, message FROM asyncwrite.dead_letters d ORDER BY d.id OFFSET :d1;

-- Settings a trigger changes, and temporary objects, do not carry over to
-- the writes of another role in the same worker.
CREATE TABLE sec_setter (id int);
CREATE TABLE sec_reader (id int, lock_timeout text, work_mem text);
GRANT INSERT ON sec_setter TO aw_sec_writer;
GRANT INSERT ON sec_reader TO aw_sec_other;
CREATE FUNCTION sec_set() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('lock_timeout', '10ms', false);
    SET work_mem = '1MB';
    IF NEW.id = 2 THEN CREATE TEMP TABLE sec_tmp (a int); END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER sec_set BEFORE INSERT ON sec_setter FOR EACH ROW EXECUTE FUNCTION sec_set();
CREATE FUNCTION sec_read() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.lock_timeout := current_setting('lock_timeout');
    NEW.work_mem := current_setting('work_mem');
    RETURN NEW;
END $$;
CREATE TRIGGER sec_read BEFORE INSERT ON sec_reader FOR EACH ROW EXECUTE FUNCTION sec_read();
SELECT count(*) AS d2 FROM asyncwrite.dead_letters \gset
SET ROLE aw_sec_writer;
SELECT asyncwrite.insert('sec_setter', '{"id": 1}') > 0 AND asyncwrite.insert('sec_setter', '{"id": 2}') > 0 AS queued;
RESET ROLE;
SET ROLE aw_sec_other;
SELECT asyncwrite.insert('sec_reader', '{"id": 1}') > 0 AS queued;
RESET ROLE;
SELECT asyncwrite.flush();
SELECT id FROM sec_setter;
SELECT id, lock_timeout, work_mem = current_setting('work_mem') AS default_work_mem FROM sec_reader;
SELECT payload->>'id' AS id, sqlstate, message FROM asyncwrite.dead_letters d ORDER BY d.id OFFSET :d2;

-- pg_monitor members see every dead letter in dead_letters_overview, but
-- no payload (rows of tables they may not read); 016_dead_letters.pl has
-- the rest.
CREATE ROLE aw_sec_monitor IN ROLE pg_monitor;
SELECT count(*) AS all_dead FROM asyncwrite.dead_letters \gset
SET ROLE aw_sec_monitor;
SELECT count(*) AS monitor_reads_payloads FROM asyncwrite.dead_letters;
SELECT count(*) = :all_dead AND :all_dead > 0 AS monitor_sees_all
  FROM asyncwrite.dead_letters_overview;
RESET ROLE;

-- The worker applies with the search_path a new session of the role gets
-- (its ALTER ROLE setting), not the caller's (as_role.sql has the rest).
CREATE TABLE sec_path (id int, path text);
CREATE FUNCTION sec_path_record() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.path := current_setting('search_path');
    RETURN NEW;
END $$;
CREATE TRIGGER sec_path BEFORE INSERT ON sec_path FOR EACH ROW EXECUTE FUNCTION sec_path_record();
GRANT INSERT ON sec_path TO aw_sec_writer;
ALTER ROLE aw_sec_writer SET search_path = public;
SET search_path = public, asyncwrite;
SET ROLE aw_sec_writer;
SELECT asyncwrite.insert('sec_path', '{"id": 1}') > 0 AS queued;
RESET ROLE;
RESET search_path;
SELECT asyncwrite.flush();
SELECT id, path FROM sec_path;

-- A sequence default the worker draws needs the caller's right to use the
-- sequence, checked at the call (nothing queued); the worker draws it as
-- that role.
\i test/sql/include/try.sql
CREATE TABLE sec_serial (id bigserial PRIMARY KEY, v int);
GRANT INSERT ON sec_serial TO aw_sec_writer;
SELECT enqueued AS q0 FROM asyncwrite.stats WHERE database = current_database() \gset
SET ROLE aw_sec_writer;
SELECT try($$SELECT asyncwrite.insert('sec_serial', '{"v": 1}')$$);
RESET ROLE;
SELECT enqueued - :q0 AS queued_after_denied FROM asyncwrite.stats WHERE database = current_database();
GRANT USAGE ON SEQUENCE sec_serial_id_seq TO aw_sec_writer;
SET ROLE aw_sec_writer;
SELECT asyncwrite.insert('sec_serial', '{"v": 2}') > 0 AS queued;
RESET ROLE;
SELECT asyncwrite.flush();
SELECT id, v FROM sec_serial;
-- An identity column needs no sequence privilege, as for INSERT.
CREATE TABLE sec_ident (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v int);
GRANT INSERT ON sec_ident TO aw_sec_writer;
SET ROLE aw_sec_writer;
SELECT asyncwrite.insert('sec_ident', '{"v": 3}') > 0 AS queued;
RESET ROLE;
SELECT asyncwrite.flush();
SELECT id, v FROM sec_ident;
