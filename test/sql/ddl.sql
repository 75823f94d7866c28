-- Table DDL between enqueue and apply: each write applies with correct
-- values or goes to dead_letters with a message naming the cause.
\set VERBOSITY default
\set SHOW_CONTEXT never
-- Writes are queued at the call here (ids at once, applied even on
-- rollback); transactional submission is tested in transactional.sql.
SET asyncwrite.transactional = off;

DELETE FROM asyncwrite.dead_letters;

-- With the worker running, table DDL first lets queued writes apply.
CREATE TABLE d1 (id int PRIMARY KEY, a int, b text);
SELECT count(asyncwrite.insert('d1', jsonb_build_object('id', g, 'a', g, 'b', 'x' || g)))
  FROM generate_series(1, 100) g;
ALTER TABLE d1 ALTER COLUMN a TYPE text;
SELECT count(*), sum(a::int) FROM d1;
SELECT count(*) AS dead_letters FROM asyncwrite.dead_letters;

-- Paused, the writes wait in the queue across the DDL.
CREATE TABLE d2 (id int PRIMARY KEY, a int, b text DEFAULT 'default b');
CREATE FUNCTION queue_paused(v int) RETURNS void LANGUAGE sql AS $$
    SELECT asyncwrite.pause();
    SELECT asyncwrite.insert('d2', jsonb_build_object('id', v, 'a', v));
$$;
CREATE FUNCTION apply_now() RETURNS boolean LANGUAGE sql AS $$
    SELECT asyncwrite.resume();
    SELECT asyncwrite.flush();
$$;

-- ADD COLUMN with a constant default: the write gets it, as existing rows do.
SELECT queue_paused(1);
ALTER TABLE d2 ADD COLUMN c int DEFAULT 7;
SELECT apply_now();
-- ADD COLUMN with a volatile default: the write gets NULL.
SELECT queue_paused(2);
ALTER TABLE d2 ADD COLUMN d timestamptz DEFAULT clock_timestamp();
SELECT apply_now();
SELECT id, a, b, c, d IS NULL AS d_null FROM d2 ORDER BY id;

-- RENAME COLUMN and RENAME TABLE: applied, values in the renamed places.
SELECT queue_paused(3);
ALTER TABLE d2 RENAME COLUMN b TO label;
ALTER TABLE d2 RENAME TO d2_renamed;
SELECT apply_now();
SELECT id, a, label FROM d2_renamed WHERE id = 3;
ALTER TABLE d2_renamed RENAME TO d2;

-- TRUNCATE: the write was queued before it but is applied after it.
SELECT queue_paused(4);
TRUNCATE d2;
SELECT apply_now();
SELECT id, a, label FROM d2 ORDER BY id;

-- DROP COLUMN and ALTER COLUMN TYPE: the row no longer fits; dead letter.
SELECT queue_paused(5);
ALTER TABLE d2 DROP COLUMN label;
SELECT apply_now();
SELECT queue_paused(6);
ALTER TABLE d2 ALTER COLUMN a TYPE bigint;
SELECT apply_now();
SELECT id, a FROM d2 ORDER BY id;

-- DROP TABLE: dead letter naming the missing table.
SELECT queue_paused(7);
DROP TABLE d2;
SELECT apply_now();

SELECT write_id IS NOT NULL AS has_write_id, target_name, sqlstate,
       regexp_replace(message, 'OID [0-9]+', 'OID N') AS message, detail,
       payload IS NULL AS payload_lost
  FROM asyncwrite.dead_letters ORDER BY id;
SELECT state, queued FROM asyncwrite.stats WHERE database = current_database();

-- A table renamed away, or its schema renamed, while writes wait: they go
-- to the table they were queued for, never to a new one with the old name.
CREATE SCHEMA s1;
CREATE TABLE s1.t (id int);
CREATE TABLE t3 (id int);
SELECT asyncwrite.pause();
SELECT asyncwrite.insert('s1.t', '{"id": 1}') > 0 AND asyncwrite.insert('t3', '{"id": 3}') > 0 AS queued;
ALTER SCHEMA s1 RENAME TO s1_old;
CREATE SCHEMA s1;
CREATE TABLE s1.t (id int);
ALTER TABLE t3 RENAME TO t3_old;
CREATE TABLE t3 (id int);
SELECT apply_now();
SELECT 's1_old.t' AS tab, count(*) FROM s1_old.t UNION ALL SELECT 's1.t', count(*) FROM s1.t
UNION ALL SELECT 't3_old', count(*) FROM t3_old UNION ALL SELECT 't3', count(*) FROM t3;

-- Table DDL waits only for writes queued to the tables it changes, never
-- for temporary tables; and when the worker waits for a lock this
-- transaction holds, the wait ends with a WARNING, never an error.
CREATE TABLE ddl_locked (id int PRIMARY KEY, v int);
INSERT INTO ddl_locked VALUES (1, 0);
CREATE TABLE ddl_queued (id int);
CREATE TABLE ddl_other (id int);
CREATE TEMP TABLE ddl_temp (id int);
SET asyncwrite.ddl_flush_timeout = '60s';
BEGIN;
UPDATE ddl_locked SET v = 1 WHERE id = 1;
SELECT asyncwrite.update('ddl_locked', '{"id": 1}', '{"v": 2}') > 0 AS queued_blocked,
       asyncwrite.insert('ddl_queued', '{"id": 1}') > 0 AS queued_behind;
SELECT clock_timestamp() AS ddl_start \gset
ALTER TABLE ddl_other ADD COLUMN b int;
ALTER TABLE ddl_temp ADD COLUMN b int;
TRUNCATE ddl_other, ddl_temp;
SELECT clock_timestamp() - :'ddl_start' < interval '1 s' AS unrelated_ddl_did_not_wait;
ALTER TABLE ddl_queued ADD COLUMN b int;
SELECT clock_timestamp() - :'ddl_start' < interval '30 s' AS blocked_wait_ended_early;
COMMIT;
RESET asyncwrite.ddl_flush_timeout;
SELECT asyncwrite.flush();
SELECT v FROM ddl_locked;
SELECT * FROM ddl_queued;

-- ALTER TABLE that keeps the row layout (the same type again, another
-- collation, int to bigint and back) while writes wait: they are applied
-- as the same statements run directly are, and the queue goes on.
CREATE TABLE keep_layout (id int PRIMARY KEY, n int, t text);
CREATE TABLE keep_layout_direct (LIKE keep_layout INCLUDING ALL);
INSERT INTO keep_layout VALUES (1, 10, 'a'), (2, 20, 'b'), (3, 30, 'c');
INSERT INTO keep_layout_direct SELECT * FROM keep_layout;
SELECT asyncwrite.pause();
SELECT asyncwrite.insert('keep_layout', '{"id": 4, "n": 40, "t": "d"}') > 0 AS ins,
       asyncwrite.upsert('keep_layout', '{"id": 1, "n": 11}') > 0 AS ups,
       asyncwrite.update('keep_layout', '{"id": 2}', '{"t": "B"}') > 0 AS upd,
       asyncwrite.delete('keep_layout', '{"id": 3}') > 0 AS del,
       asyncwrite.increment('keep_layout', '{"id": 4}', '{"n": 1}') > 0 AS inc;
ALTER TABLE keep_layout ALTER COLUMN n TYPE int USING n;
ALTER TABLE keep_layout ALTER COLUMN t TYPE text COLLATE "C";
ALTER TABLE keep_layout ALTER COLUMN n TYPE bigint;
ALTER TABLE keep_layout ALTER COLUMN n TYPE int;
INSERT INTO keep_layout_direct VALUES (4, 40, 'd');
INSERT INTO keep_layout_direct (id, n) VALUES (1, 11) ON CONFLICT (id) DO UPDATE SET n = EXCLUDED.n;
UPDATE keep_layout_direct SET t = 'B' WHERE id = 2;
DELETE FROM keep_layout_direct WHERE id = 3;
INSERT INTO keep_layout_direct (id, n) VALUES (4, 1)
    ON CONFLICT (id) DO UPDATE SET n = keep_layout_direct.n + EXCLUDED.n;
SELECT apply_now();
SELECT * FROM keep_layout ORDER BY id;
SELECT (SELECT array_agg(k::text ORDER BY id) FROM keep_layout k) =
       (SELECT array_agg(k::text ORDER BY id) FROM keep_layout_direct k) AS same_as_direct;
SELECT state, queued FROM asyncwrite.stats WHERE database = current_database();
SELECT count(*) AS dead_letters FROM asyncwrite.dead_letters WHERE target = 'keep_layout'::regclass;
