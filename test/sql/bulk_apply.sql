-- Bulk apply: queued inserts into plain tables go in the way COPY does
-- (table_multi_insert, then index entries and AFTER ROW triggers per row),
-- and must behave exactly as the INSERT they replace: constraints,
-- generated columns, triggers, foreign keys, privileges, partitions.
-- Tables it must not take (policies, BEFORE ROW triggers, rules,
-- partitioned tables) go through INSERT, with the same results.
\set VERBOSITY default
\set SHOW_CONTEXT never
SET asyncwrite.transactional = off;

\i test/sql/include/try.sql

DELETE FROM asyncwrite.dead_letters;

-- Indexes, CHECK, NOT NULL, a stored generated column and a unique key:
-- one bad row of each kind in one batch fails alone with its own SQLSTATE.
CREATE TABLE bulk_t (
    id int PRIMARY KEY,
    v int NOT NULL CHECK (v >= 0),
    tag text DEFAULT 'none',
    twice int GENERATED ALWAYS AS (v * 2) STORED
);
CREATE INDEX ON bulk_t (tag);
SELECT asyncwrite.pause();
SELECT count(asyncwrite.insert('bulk_t', jsonb_build_object('id', g, 'v', g)))
  FROM generate_series(1, 3000) g;
SELECT asyncwrite.insert('bulk_t', '{"id": 1, "v": 5}') > 0 AS dup_queued;
SELECT asyncwrite.insert('bulk_t', '{"id": 3001, "v": -1}') > 0 AS check_queued;
SELECT asyncwrite.insert('bulk_t', '{"id": 3002, "v": null}') > 0 AS null_queued;
SELECT asyncwrite.insert('bulk_t', '{"id": 3003, "v": 7, "tag": "last"}') > 0 AS good_queued;
SELECT asyncwrite.resume();
SELECT asyncwrite.flush();
SELECT count(*) AS rows, sum(v) AS sum_v, bool_and(twice = v * 2) AS generated_ok,
       count(*) FILTER (WHERE tag = 'none') AS defaulted
  FROM bulk_t;
SELECT id, v, tag, twice FROM bulk_t WHERE id = 3003;
SELECT sqlstate, payload->>'id' AS id FROM asyncwrite.dead_letters ORDER BY write_id;
-- The index serves lookups of the bulk-inserted rows.
SET enable_seqscan = off;
SELECT count(*) AS by_index FROM bulk_t WHERE tag = 'last';
RESET enable_seqscan;
DELETE FROM asyncwrite.dead_letters;

-- AFTER ROW triggers fire once per row, statement triggers once per run,
-- and a transition table sees every row of the run.
CREATE TABLE bulk_log (what text, n int);
CREATE TABLE bulk_trig (id int PRIMARY KEY, v int);
CREATE FUNCTION bulk_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO public.bulk_log VALUES ('row', NEW.v); RETURN NULL; END $$;
CREATE FUNCTION bulk_stmt() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO public.bulk_log SELECT 'stmt', count(*) FROM new_rows; RETURN NULL; END $$;
CREATE TRIGGER bulk_row AFTER INSERT ON bulk_trig FOR EACH ROW EXECUTE FUNCTION bulk_row();
CREATE TRIGGER bulk_stmt AFTER INSERT ON bulk_trig REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION bulk_stmt();
SELECT asyncwrite.pause();
SELECT count(asyncwrite.insert('bulk_trig', jsonb_build_object('id', g, 'v', g)))
  FROM generate_series(1, 500) g;
SELECT asyncwrite.resume();
SELECT asyncwrite.flush();
SELECT what, count(*) AS fired, sum(n) AS total FROM bulk_log GROUP BY what ORDER BY what;

-- Foreign keys are checked within the batch: the orphan alone fails.
CREATE TABLE bulk_parent (id int PRIMARY KEY);
INSERT INTO bulk_parent SELECT generate_series(1, 10);
CREATE TABLE bulk_child (id int PRIMARY KEY, parent int REFERENCES bulk_parent);
SELECT asyncwrite.pause();
SELECT count(asyncwrite.insert('bulk_child', jsonb_build_object('id', g, 'parent', (g % 11))))
  FROM generate_series(1, 22) g;
SELECT asyncwrite.resume();
SELECT asyncwrite.flush();
SELECT count(*) AS children FROM bulk_child;
SELECT sqlstate, count(*) AS failed FROM asyncwrite.dead_letters GROUP BY sqlstate;
DELETE FROM asyncwrite.dead_letters;

-- A deferrable unique key is checked at the end of the run, not at commit.
CREATE TABLE bulk_defer (k int UNIQUE DEFERRABLE INITIALLY DEFERRED);
SELECT asyncwrite.pause();
SELECT count(asyncwrite.insert('bulk_defer', jsonb_build_object('k', g % 5)))
  FROM generate_series(1, 6) g;
SELECT asyncwrite.resume();
SELECT asyncwrite.flush();
SELECT count(*) AS rows, count(DISTINCT k) AS keys FROM bulk_defer;
SELECT sqlstate, payload->>'k' AS k FROM asyncwrite.dead_letters;
DELETE FROM asyncwrite.dead_letters;

-- A partition written directly keeps its partition constraint.
CREATE TABLE bulk_parted (d int, v text) PARTITION BY RANGE (d);
CREATE TABLE bulk_p1 PARTITION OF bulk_parted FOR VALUES FROM (0) TO (10);
CREATE TABLE bulk_p2 PARTITION OF bulk_parted FOR VALUES FROM (10) TO (20);
SELECT asyncwrite.pause();
SELECT count(asyncwrite.insert('bulk_p1', jsonb_build_object('d', g, 'v', 'p1')))
  FROM generate_series(8, 11) g;
-- The partitioned table itself routes through INSERT.
SELECT count(asyncwrite.insert('bulk_parted', jsonb_build_object('d', g, 'v', 'routed')))
  FROM generate_series(5, 14) g;
SELECT asyncwrite.resume();
SELECT asyncwrite.flush();
SELECT tableoid::regclass AS part, v, count(*) FROM bulk_parted GROUP BY 1, 2 ORDER BY 1, 2;
SELECT sqlstate, payload->>'d' AS d FROM asyncwrite.dead_letters ORDER BY write_id;
DELETE FROM asyncwrite.dead_letters;

-- A BEFORE ROW trigger (INSERT path) still changes and drops rows.
CREATE TABLE bulk_before (id int, v int);
CREATE FUNCTION bulk_before() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN IF NEW.v < 0 THEN RETURN NULL; END IF; NEW.v := NEW.v * 10; RETURN NEW; END $$;
CREATE TRIGGER bulk_before BEFORE INSERT ON bulk_before FOR EACH ROW EXECUTE FUNCTION bulk_before();
SELECT count(asyncwrite.insert('bulk_before', jsonb_build_object('id', g, 'v', g - 3)))
  FROM generate_series(1, 6) g;
SELECT asyncwrite.flush();
SELECT id, v FROM bulk_before ORDER BY id;

-- A rule (INSERT path) still redirects the rows.
CREATE TABLE bulk_ruled (id int);
CREATE TABLE bulk_ruled_sink (id int);
CREATE RULE bulk_redirect AS ON INSERT TO bulk_ruled DO INSTEAD
  INSERT INTO public.bulk_ruled_sink VALUES (NEW.id);
SELECT count(asyncwrite.insert('bulk_ruled', jsonb_build_object('id', g)))
  FROM generate_series(1, 4) g;
SELECT asyncwrite.flush();
SELECT (SELECT count(*) FROM bulk_ruled) AS ruled, (SELECT count(*) FROM bulk_ruled_sink) AS sink;

-- Privileges are those of the role that queued the writes, checked when
-- applied: INSERT revoked in between sends the rows to dead_letters.
CREATE ROLE aw_bulk_user;
GRANT USAGE ON SCHEMA public TO aw_bulk_user;
CREATE TABLE bulk_priv (id int, secret text);
GRANT INSERT (id, secret) ON bulk_priv TO aw_bulk_user;
SELECT asyncwrite.pause();
SET ROLE aw_bulk_user;
SELECT count(asyncwrite.insert('bulk_priv', jsonb_build_object('id', g)))
  FROM generate_series(1, 3) g;
RESET ROLE;
REVOKE INSERT (secret) ON bulk_priv FROM aw_bulk_user;
SELECT asyncwrite.resume();
SELECT asyncwrite.flush();
SELECT count(*) AS rows FROM bulk_priv;
SELECT sqlstate, count(*) AS failed, min(role::regrole::text) AS role
  FROM asyncwrite.dead_letters GROUP BY sqlstate;
DELETE FROM asyncwrite.dead_letters;

-- Row-level security applies to the queuing role (INSERT path): the
-- policy's WITH CHECK refuses the rows it does not allow.
CREATE TABLE bulk_rls (id int, owner text);
ALTER TABLE bulk_rls ENABLE ROW LEVEL SECURITY;
CREATE POLICY own ON bulk_rls FOR INSERT WITH CHECK (owner = current_user);
GRANT INSERT ON bulk_rls TO aw_bulk_user;
SET ROLE aw_bulk_user;
SELECT asyncwrite.insert('bulk_rls', '{"id": 1, "owner": "aw_bulk_user"}') > 0 AS mine;
SELECT asyncwrite.insert('bulk_rls', '{"id": 2, "owner": "someone_else"}') > 0 AS theirs;
SELECT asyncwrite.flush();
RESET ROLE;
SELECT id, owner FROM bulk_rls ORDER BY id;
SELECT sqlstate, payload->>'id' AS id FROM asyncwrite.dead_letters;
DELETE FROM asyncwrite.dead_letters;

-- A failed insert whose id the worker was to draw keeps no id in its dead
-- letter; retried, it gets one then.
CREATE TABLE bulk_serial (id bigserial PRIMARY KEY, v int CHECK (v > 0));
SELECT asyncwrite.insert('bulk_serial', '{"v": 0}') > 0 AS queued;
SELECT asyncwrite.flush();
SELECT sqlstate, payload FROM asyncwrite.dead_letters;
ALTER TABLE bulk_serial DROP CONSTRAINT bulk_serial_v_check;
SELECT asyncwrite.retry_failed();
SELECT asyncwrite.flush();
SELECT id, v FROM bulk_serial;
SELECT count(*) AS dead_letters_left FROM asyncwrite.dead_letters;

-- Sequence defaults stay with the caller where a BEFORE ROW trigger could
-- see or set the column, or another default reads the sequence.
CREATE TABLE bulk_seq_trig (id bigserial PRIMARY KEY, v int);
CREATE FUNCTION bulk_seq_trig() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN IF NEW.id IS NULL THEN NEW.id := -NEW.v; END IF; RETURN NEW; END $$;
CREATE TRIGGER bulk_seq_trig BEFORE INSERT ON bulk_seq_trig FOR EACH ROW EXECUTE FUNCTION bulk_seq_trig();
SELECT asyncwrite.insert('bulk_seq_trig', '{"id": null, "v": 7}') > 0 AS explicit_null_queued;
SELECT asyncwrite.insert('bulk_seq_trig', '{"v": 8}') > 0 AS default_queued;
SELECT asyncwrite.flush();
SELECT id, v FROM bulk_seq_trig ORDER BY v;
CREATE SEQUENCE bulk_inv_seq;
CREATE TABLE bulk_inv (id bigint NOT NULL DEFAULT nextval('bulk_inv_seq'),
                       label text DEFAULT 'INV-' || currval('bulk_inv_seq'));
SELECT asyncwrite.insert('bulk_inv', '{}') > 0 AS queued;
SELECT asyncwrite.flush();
SELECT id, label FROM bulk_inv;

-- A row whose sequence default waits for the worker gets it even if the
-- column lost NOT NULL meanwhile; with the default dropped it fails as an
-- INSERT would.
CREATE TABLE bulk_seq_ddl (k int, n bigserial);
SELECT asyncwrite.pause();
SELECT asyncwrite.insert('bulk_seq_ddl', '{"k": 1}') > 0 AS queued;
ALTER TABLE bulk_seq_ddl ALTER n DROP NOT NULL;
SELECT asyncwrite.resume();
SELECT asyncwrite.flush();
SELECT k, n FROM bulk_seq_ddl;
ALTER TABLE bulk_seq_ddl ALTER n SET NOT NULL;
SELECT asyncwrite.pause();
SELECT asyncwrite.insert('bulk_seq_ddl', '{"k": 2}') > 0 AS queued;
ALTER TABLE bulk_seq_ddl ALTER n DROP DEFAULT;
SELECT asyncwrite.resume();
SELECT asyncwrite.flush();
SELECT count(*) AS rows FROM bulk_seq_ddl;
SELECT sqlstate, payload->>'k' AS k FROM asyncwrite.dead_letters;
DELETE FROM asyncwrite.dead_letters;

DROP TABLE bulk_seq_ddl, bulk_seq_trig, bulk_inv, bulk_serial, bulk_t, bulk_log, bulk_trig, bulk_child, bulk_parent, bulk_defer,
  bulk_parted, bulk_before, bulk_ruled, bulk_ruled_sink, bulk_priv, bulk_rls;
DROP FUNCTION bulk_row(), bulk_stmt(), bulk_before(), bulk_seq_trig();
DROP SEQUENCE bulk_inv_seq;
DROP OWNED BY aw_bulk_user;
DROP ROLE aw_bulk_user;
