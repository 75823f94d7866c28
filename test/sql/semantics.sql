-- A queued write gives what the same write made directly gives
-- (asyncwrite.enabled = off, or the plain statement): generated and
-- identity columns, domain constraints as they are when applied,
-- coalesced keyed writes, and capture()'s target.
\set VERBOSITY default
\set SHOW_CONTEXT never
\i test/sql/include/try.sql

-- Identity and generated columns through a composite of the table's type:
-- refused as INSERT refuses them (428C9); NULL means DEFAULT.
CREATE TABLE sem_ident (id int GENERATED ALWAYS AS IDENTITY, v text,
                        g int GENERATED ALWAYS AS (length(v)) STORED);
SELECT try($$SELECT asyncwrite.insert('sem_ident', ROW(999, 'x', NULL)::sem_ident)$$);
SELECT try($$INSERT INTO sem_ident SELECT (ROW(999, 'x', NULL)::sem_ident).*$$);
SELECT try($$SELECT asyncwrite.insert('sem_ident', ROW(NULL, 'x', 7)::sem_ident)$$);
SELECT try($$INSERT INTO sem_ident (v, g) VALUES ('x', 7)$$);
SELECT asyncwrite.insert('sem_ident', ROW(NULL, 'abc', NULL)::sem_ident) IS NULL AS kept;
SELECT asyncwrite.flush();
INSERT INTO sem_ident (v) VALUES ('abcd');
SELECT * FROM sem_ident ORDER BY id;

-- Domain constraints added while writes wait are checked when the writes
-- are applied, as an INSERT then would: 23514 and 23502 dead letters.
CREATE DOMAIN sem_pos AS int;
CREATE DOMAIN sem_small AS int;
CREATE TABLE sem_dom (id int, v sem_pos, vs sem_small[]);
SELECT asyncwrite.pause();
SELECT asyncwrite.insert('sem_dom', '{"id": 1, "v": -5}', transactional => false) > 0 AS queued;
SELECT asyncwrite.insert('sem_dom', '{"id": 2, "v": null}', transactional => false) > 0 AS queued;
SELECT asyncwrite.insert('sem_dom', '{"id": 3, "v": 5}', transactional => false) > 0 AS queued;
SELECT asyncwrite.insert('sem_dom', '{"id": 4, "v": 5, "vs": [5, 50]}', transactional => false) > 0 AS queued;
SELECT asyncwrite.insert('sem_dom', '{"id": 5, "v": 5, "vs": [5, 6]}', transactional => false) > 0 AS queued;
ALTER DOMAIN sem_pos ADD CONSTRAINT sem_pos_check CHECK (VALUE > 0) NOT VALID;
ALTER DOMAIN sem_pos SET NOT NULL;
ALTER DOMAIN sem_small ADD CONSTRAINT sem_small_check CHECK (VALUE < 10) NOT VALID;
SELECT asyncwrite.resume();
SELECT asyncwrite.flush();
SELECT * FROM sem_dom ORDER BY id;
SELECT payload->>'id' AS id, sqlstate, message FROM asyncwrite.dead_letters
 WHERE target = 'sem_dom'::regclass ORDER BY id;
-- An explicit NULL in a column whose default is a sequence is a value too.
CREATE DOMAIN sem_nn AS bigint;
CREATE SEQUENCE sem_nn_seq;
CREATE TABLE sem_dom_seq (k int PRIMARY KEY, c sem_nn DEFAULT nextval('sem_nn_seq'));
SELECT asyncwrite.pause();
SELECT asyncwrite.upsert('sem_dom_seq', '{"k": 1, "c": null}', transactional => false) > 0 AS queued;
ALTER DOMAIN sem_nn SET NOT NULL;
SELECT asyncwrite.resume();
SELECT asyncwrite.flush();
SELECT count(*) AS applied FROM sem_dom_seq;
SELECT sqlstate, message FROM asyncwrite.dead_letters WHERE target = 'sem_dom_seq'::regclass;
SELECT try($$INSERT INTO sem_dom_seq VALUES (1, NULL) ON CONFLICT (k) DO UPDATE SET c = EXCLUDED.c$$);
DROP TABLE sem_dom_seq;
DROP DOMAIN sem_nn;
DROP SEQUENCE sem_nn_seq;
-- The oracle: the same rows inserted now.
SELECT try($$INSERT INTO sem_dom VALUES (1, -5)$$);
SELECT try($$INSERT INTO sem_dom VALUES (2, NULL)$$);
SELECT try($$INSERT INTO sem_dom VALUES (4, 5, '{5,50}')$$);
DELETE FROM asyncwrite.dead_letters WHERE target = 'sem_dom'::regclass;

-- A row queued before an ALTER COLUMN TYPE is never read with the new
-- types, whatever the new layout: these two layouts had the same unkeyed
-- fingerprint, and the int read as text crashed the worker.
CREATE TABLE sem_fp (a varchar(2347865), c int);
SELECT asyncwrite.pause();
SELECT asyncwrite.insert('sem_fp', '{"a": "x", "c": -4}', transactional => false) > 0 AS queued;
ALTER TABLE sem_fp ALTER a TYPE varchar(130), ALTER c TYPE text;
SELECT asyncwrite.resume();
SELECT asyncwrite.flush();
SELECT count(*) AS applied FROM sem_fp;
SELECT sqlstate, payload FROM asyncwrite.dead_letters WHERE target = 'sem_fp'::regclass;
DROP TABLE sem_fp;

-- Coalescing: writes of one key applied together give the one-by-one
-- result.  Each table is written queued (q) and one by one (d, with
-- asyncwrite.enabled = off); the rows must be equal.
CREATE SEQUENCE sem_calls;
CREATE TABLE sem_up_q (k int PRIMARY KEY, v int, first_call bigint DEFAULT nextval('sem_calls'));
CREATE TABLE sem_up_d (LIKE sem_up_q INCLUDING ALL);
CREATE TABLE sem_inc_q (k int PRIMARY KEY, n int NOT NULL DEFAULT 0,
                        first_call bigint DEFAULT nextval('sem_calls'));
CREATE TABLE sem_inc_d (LIKE sem_inc_q INCLUDING ALL);
CREATE FUNCTION sem_writes(suffix text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM setval('sem_calls', 1, false);
    -- Five upserts of one missing key, then of an existing one.
    FOR i IN 1..5 LOOP
        PERFORM asyncwrite.upsert(('sem_up_' || suffix)::regclass,
                                  jsonb_build_object('k', 1, 'v', i));
    END LOOP;
    -- An upsert setting no column (DO NOTHING): the first row stays.
    FOR i IN 1..3 LOOP
        PERFORM asyncwrite.upsert(('sem_up_' || suffix)::regclass,
                                  jsonb_build_object('k', 2));
    END LOOP;
    -- Increments of 50 missing keys, twice each, interleaved.
    FOR r IN 1..2 LOOP
        FOR k IN 1..50 LOOP
            PERFORM asyncwrite.increment(('sem_inc_' || suffix)::regclass,
                                         jsonb_build_object('k', k),
                                         jsonb_build_object('n', r));
        END LOOP;
    END LOOP;
END $$;
SELECT asyncwrite.pause();
SELECT sem_writes('q');
SELECT asyncwrite.resume();
SELECT asyncwrite.flush();
SET asyncwrite.enabled = off;
SELECT sem_writes('d');
RESET asyncwrite.enabled;
SELECT * FROM sem_up_q ORDER BY k;
SELECT (SELECT array_agg(u ORDER BY k) FROM sem_up_q u)::text =
       (SELECT array_agg(u ORDER BY k) FROM sem_up_d u)::text AS upserts_same;
SELECT count(*) AS keys, sum(n) AS total, min(first_call) AS min_first, max(first_call) AS max_first
  FROM sem_inc_q;
SELECT (SELECT array_agg(i ORDER BY k) FROM sem_inc_q i)::text =
       (SELECT array_agg(i ORDER BY k) FROM sem_inc_d i)::text AS increments_same;
-- The documented difference: deltas are summed before they are added, so
-- an overflow one by one would hit only on the way is not seen.
INSERT INTO sem_inc_q VALUES (100, 2147483000, 0), (101, 2147483000, 0);
CREATE FUNCTION sem_overflow(k int) RETURNS void LANGUAGE sql AS $$
    SELECT asyncwrite.increment('sem_inc_q', jsonb_build_object('k', k), '{"n": 1000}');
    SELECT asyncwrite.increment('sem_inc_q', jsonb_build_object('k', k), '{"n": -1000}');
$$;
SELECT asyncwrite.pause();
SELECT sem_overflow(100);
SELECT asyncwrite.resume();
SELECT asyncwrite.flush();
SET asyncwrite.enabled = off;
SELECT try('SELECT sem_overflow(101)');
RESET asyncwrite.enabled;
SELECT k, n FROM sem_inc_q WHERE k >= 100 ORDER BY k;
SELECT count(*) AS overflow_dead_letters FROM asyncwrite.dead_letters WHERE target = 'sem_inc_q'::regclass;
DROP FUNCTION sem_overflow(int);
-- A NULL delta would make the sum NULL one by one but not in a batch:
-- refused at the call.
SELECT try($$SELECT asyncwrite.increment('sem_inc_q', '{"k": 1}', '{"n": null}')$$);

-- A write made inside a security-restricted operation (REFRESH
-- MATERIALIZED VIEW) is written then, inside it, never left for COMMIT.
CREATE TABLE sem_refresh_log (n int);
CREATE FUNCTION sem_log_refresh() RETURNS int LANGUAGE plpgsql AS $$
BEGIN
    PERFORM asyncwrite.insert('public.sem_refresh_log', '{"n": 1}', transactional => true);
    RETURN 1;
END $$;
CREATE MATERIALIZED VIEW sem_mv AS SELECT sem_log_refresh() AS x WITH NO DATA;
BEGIN;
REFRESH MATERIALIZED VIEW sem_mv;
SELECT count(*) AS written_in_refresh FROM sem_refresh_log;
COMMIT;
DROP MATERIALIZED VIEW sem_mv;
DROP FUNCTION sem_log_refresh();
DROP TABLE sem_refresh_log;

-- capture(): the audit table is found without the session's search_path:
-- in the source table's schema, or the schema CREATE TRIGGER names.
CREATE SCHEMA sem_app;
CREATE TABLE sem_app.acc (id int, v text);
CREATE TABLE sem_app.acc_audit (id int, v text, op text);
CREATE TABLE sem_app.acc_log (id int, v text, op text);
CREATE TABLE sem_app.acc_second (id int, v text, op text);
CREATE SCHEMA sem_other;
CREATE TABLE sem_other.acc_audit (id int, v text, op text);
CREATE ROLE aw_sem_user;
CREATE SCHEMA aw_sem_user AUTHORIZATION aw_sem_user;
GRANT USAGE ON SCHEMA sem_app, sem_other TO aw_sem_user;
GRANT INSERT ON sem_app.acc, sem_app.acc_audit, sem_app.acc_log, sem_other.acc_audit TO aw_sem_user;
-- Names are SQL names: Acc_Audit is acc_audit; "Acc_Audit" is not.
CREATE TRIGGER a1 AFTER INSERT ON sem_app.acc
    FOR EACH ROW EXECUTE FUNCTION asyncwrite.capture('Acc_Audit', 'op');
CREATE TRIGGER a2 AFTER INSERT ON sem_app.acc
    FOR EACH ROW EXECUTE FUNCTION asyncwrite.capture('sem_other.acc_audit', 'op');
SET ROLE aw_sem_user;
-- The user's own table first in its search_path is not used.
CREATE TABLE aw_sem_user.acc_audit (id int, v text, op text);
SET search_path = aw_sem_user, sem_app, public;
INSERT INTO sem_app.acc VALUES (1, 'a');
RESET search_path;
RESET ROLE;
SELECT asyncwrite.flush();
SELECT 'sem_app' AS s, * FROM sem_app.acc_audit UNION ALL
SELECT 'sem_other', * FROM sem_other.acc_audit UNION ALL
SELECT 'aw_sem_user', * FROM aw_sem_user.acc_audit ORDER BY 1;
-- A name not in the source table's schema is an error, whatever the
-- search_path holds.
CREATE TABLE aw_sem_user.acc_elsewhere (id int, v text, op text);
GRANT INSERT ON aw_sem_user.acc_elsewhere TO PUBLIC;
CREATE TRIGGER a3 AFTER INSERT ON sem_app.acc
    FOR EACH ROW EXECUTE FUNCTION asyncwrite.capture('acc_elsewhere', 'op');
SET search_path = aw_sem_user, public;
SELECT try($$INSERT INTO sem_app.acc VALUES (2, 'b')$$);
RESET search_path;
DROP TRIGGER a3 ON sem_app.acc;
CREATE TRIGGER a3 AFTER INSERT ON sem_app.acc
    FOR EACH ROW EXECUTE FUNCTION asyncwrite.capture('"Acc_Audit"', 'op');
SELECT try($$INSERT INTO sem_app.acc VALUES (2, 'b')$$);
DROP TRIGGER a3 ON sem_app.acc;
-- CREATE OR REPLACE TRIGGER keeps the trigger's OID: its new target is
-- used, in this session too.
CREATE OR REPLACE TRIGGER a2 AFTER INSERT ON sem_app.acc
    FOR EACH ROW EXECUTE FUNCTION asyncwrite.capture('acc_second', 'op');
INSERT INTO sem_app.acc VALUES (9, 'z');
SELECT asyncwrite.flush();
SELECT * FROM sem_app.acc_second;
SELECT count(*) AS other_rows FROM sem_other.acc_audit WHERE id = 9;
DROP TRIGGER a2 ON sem_app.acc;
DELETE FROM sem_app.acc_audit WHERE id = 9;
-- The resolution is kept per trigger, and made again after a rename.
ALTER TABLE sem_app.acc_audit RENAME TO acc_audit_old;
ALTER TABLE sem_app.acc_log RENAME TO acc_audit;
INSERT INTO sem_app.acc VALUES (3, 'c');
SELECT asyncwrite.flush();
SELECT 'acc_audit' AS t, * FROM sem_app.acc_audit UNION ALL
SELECT 'acc_audit_old', * FROM sem_app.acc_audit_old ORDER BY 1, 2;

DROP SCHEMA sem_app, sem_other CASCADE;
DROP SCHEMA aw_sem_user CASCADE;
DROP ROLE aw_sem_user;
DROP TABLE sem_ident, sem_dom, sem_up_q, sem_up_d, sem_inc_q, sem_inc_d;
DROP DOMAIN sem_pos, sem_small;
DROP SEQUENCE sem_calls;
DROP FUNCTION sem_writes(text);
DROP FUNCTION try(text);
