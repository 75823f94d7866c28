-- Failures: poison rows are isolated and kept, retry_failed() queues them
-- again, and back-pressure follows asyncwrite.on_full.
\set VERBOSITY default
\set SHOW_CONTEXT never
-- Writes are queued at the call here (ids at once, applied even on
-- rollback); transactional submission is tested in transactional.sql.
SET asyncwrite.transactional = off;

\i test/sql/include/try.sql

DELETE FROM asyncwrite.dead_letters;
CREATE TABLE poison (id int PRIMARY KEY, v int CONSTRAINT v_not_poison CHECK (v % 100 <> 0));
SELECT applied AS a0, failed AS f0 FROM asyncwrite.stats WHERE database = current_database() \gset

-- 10,000 writes, 1% of them poison: exactly 9,900 applied and 100 dead letters.
SELECT count(asyncwrite.insert('poison', jsonb_build_object('id', g, 'v', g)))
  FROM generate_series(1, 10000) g;
SELECT asyncwrite.flush();
SELECT count(*) AS applied_rows FROM poison;
SELECT count(*) AS dead_letters, min(sqlstate) AS sqlstate, max(sqlstate) AS same_sqlstate,
       count(DISTINCT write_id) AS distinct_writes, min(attempts) AS attempts,
       sum((payload->>'v')::int % 100) AS poison_only
  FROM asyncwrite.dead_letters;
SELECT message FROM asyncwrite.dead_letters LIMIT 1;
SELECT applied - :a0 AS applied, failed - :f0 AS failed
  FROM asyncwrite.stats WHERE database = current_database();

-- retry_failed(): one, then all; each dead letter goes once applied.
SELECT try('SELECT asyncwrite.retry_failed(-1)');
ALTER TABLE poison DROP CONSTRAINT v_not_poison;
SELECT min(id) AS first_dead FROM asyncwrite.dead_letters \gset
SELECT asyncwrite.retry_failed(:first_dead);
SELECT asyncwrite.flush();
SELECT count(*) AS dead_letters_left FROM asyncwrite.dead_letters;
SELECT asyncwrite.retry_failed();
SELECT asyncwrite.flush();
SELECT count(*) AS rows_now, count(*) FILTER (WHERE v % 100 = 0) AS poison_rows FROM poison;
SELECT count(*) AS dead_letters_left FROM asyncwrite.dead_letters;

-- A retry that fails again updates its dead letter instead of adding one.
ALTER TABLE poison ADD CONSTRAINT v_small CHECK (v < 20000);
SELECT asyncwrite.insert('poison', '{"id": 20001, "v": 20001}') > 0 AS queued;
SELECT asyncwrite.flush();
SELECT asyncwrite.retry_failed();
SELECT asyncwrite.flush();
SELECT count(*) AS dead_letters, max(attempts) AS attempts, max(sqlstate) AS sqlstate
  FROM asyncwrite.dead_letters;

-- Retrying twice before the worker gets to it still applies once.
ALTER TABLE poison DROP CONSTRAINT v_small;
SELECT asyncwrite.pause();
SELECT asyncwrite.retry_failed() + asyncwrite.retry_failed() AS queued_twice;
SELECT asyncwrite.resume();
SELECT asyncwrite.flush();
SELECT count(*) AS copies FROM poison WHERE id = 20001;
SELECT count(*) AS dead_letters_left FROM asyncwrite.dead_letters;

-- Other roles cannot retry what they did not queue.
CREATE ROLE aw_fail_user;
GRANT INSERT ON poison TO aw_fail_user;
ALTER TABLE poison ADD CONSTRAINT v_positive CHECK (v > 0);
SELECT asyncwrite.insert('poison', '{"id": 30000, "v": -1}') > 0 AS queued;
SELECT asyncwrite.flush();
SELECT min(id) AS su_dead FROM asyncwrite.dead_letters \gset
SET ROLE aw_fail_user;
SELECT regexp_replace(try(format('SELECT asyncwrite.retry_failed(%s)', :su_dead)), '[0-9]+ does', 'N does');
SELECT asyncwrite.retry_failed() AS retried_by_other;
RESET ROLE;
SELECT count(*) AS still_dead FROM asyncwrite.dead_letters;
DELETE FROM asyncwrite.dead_letters;

-- Back-pressure.  Fill the 8MB queue while paused with 38 rows of 190kB:
-- wherever the ring's head stands, at most one such row's worth is lost to
-- padding at its end, so less than a 1.9MB row's room is left.
CREATE TABLE big (id int PRIMARY KEY, blob text);
CREATE TABLE fill (id int PRIMARY KEY, blob text);
SELECT asyncwrite.pause();
SELECT count(asyncwrite.insert('fill', jsonb_build_object('id', g, 'blob', repeat('x', 190000))))
  FROM generate_series(1, 38) g;
SELECT queued, queued_bytes > 7000000 AS nearly_full FROM asyncwrite.stats WHERE database = current_database();
-- on_full = error: fails at once.
SET asyncwrite.on_full = 'error';
SELECT try($$SELECT asyncwrite.insert('big', jsonb_build_object('id', 5, 'blob', repeat('x', 1900000)))$$);
-- on_full = wait: fails after full_timeout.
SET asyncwrite.on_full = 'wait';
SET asyncwrite.full_timeout = '100ms';
SELECT try($$SELECT asyncwrite.insert('big', jsonb_build_object('id', 5, 'blob', repeat('x', 1900000)))$$);
-- on_full = sync: written at once, in this transaction; no write id.
SET asyncwrite.on_full = 'sync';
SELECT asyncwrite.insert('big', jsonb_build_object('id', 5, 'blob', repeat('x', 1900000))) IS NULL AS written_now;
SELECT id, length(blob) FROM big ORDER BY id;
-- A row over a quarter of the queue is refused, or written at once with sync.
SELECT asyncwrite.insert('big', jsonb_build_object('id', 6, 'blob', repeat('y', 2200000))) IS NULL AS written_now;
-- on_full = sync also at COMMIT: a transaction's writes that find the queue
-- full are written in the committing transaction.
BEGIN;
SELECT asyncwrite.insert('big', jsonb_build_object('id', 8, 'blob', repeat('z', 1900000)), transactional => true) IS NULL AS kept;
COMMIT;
SELECT id, length(blob) FROM big WHERE id = 8;
-- Their deferred constraints are checked then, as for the rows' own INSERT.
CREATE TABLE big_ref (id int PRIMARY KEY, big_id int REFERENCES big DEFERRABLE INITIALLY DEFERRED, blob text);
BEGIN;
SELECT asyncwrite.insert('big_ref', jsonb_build_object('id', 1, 'big_id', 999, 'blob', repeat('z', 1900000)), transactional => true) IS NULL AS kept;
COMMIT;
BEGIN;
SELECT asyncwrite.insert('big_ref', jsonb_build_object('id', 2, 'big_id', 8, 'blob', repeat('z', 1900000)), transactional => true) IS NULL AS kept;
COMMIT;
SELECT id, big_id FROM big_ref;
-- The same rows inserted directly (the oracle).
BEGIN;
INSERT INTO big_ref VALUES (3, 999, 'z');
COMMIT;
DROP TABLE big_ref;
RESET asyncwrite.on_full;
SELECT try($$SELECT asyncwrite.insert('big', jsonb_build_object('id', 7, 'blob', repeat('y', 2200000)))$$);
RESET asyncwrite.full_timeout;
SELECT asyncwrite.resume();
SELECT asyncwrite.flush();
SELECT id, length(blob) FROM big ORDER BY id;
SELECT count(*), sum(length(blob)) FROM fill;
SELECT queued, queued_bytes FROM asyncwrite.stats WHERE database = current_database();

-- A session that holds a lock the worker needs and then waits in flush()
-- gets a deadlock error instead of hanging.
CREATE TABLE dl (id int);
BEGIN;
LOCK TABLE dl IN SHARE MODE;
SELECT asyncwrite.insert('dl', '{"id": 1}') > 0 AS queued;
SELECT try('SELECT asyncwrite.flush()');
ROLLBACK;
SELECT asyncwrite.flush();
SELECT count(*) AS applied_after_rollback FROM dl;

-- If a failed write cannot even be recorded, the queue pauses with the
-- write at its head: nothing is dropped, nothing is applied twice.
CREATE TABLE once (id int PRIMARY KEY CHECK (id > 0));
CREATE FUNCTION dead_letters_broken() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'dead letters are broken';
END $$;
CREATE TRIGGER broken BEFORE INSERT ON asyncwrite.dead_letters
    FOR EACH ROW EXECUTE FUNCTION dead_letters_broken();
SELECT asyncwrite.insert('once', '{"id": 1}') > 0 AS good,
       asyncwrite.insert('once', '{"id": -1}') > 0 AS bad,
       asyncwrite.insert('once', '{"id": 2}') > 0 AS good_after;
SELECT asyncwrite.flush('1 s') AS flushed;
SELECT state, queued FROM asyncwrite.stats WHERE database = current_database();
SELECT id FROM once ORDER BY id;
DROP TRIGGER broken ON asyncwrite.dead_letters;
SELECT asyncwrite.resume();
SELECT asyncwrite.flush();
SELECT id FROM once ORDER BY id;
SELECT payload->>'id' AS id, sqlstate FROM asyncwrite.dead_letters;
SELECT state, queued FROM asyncwrite.stats WHERE database = current_database();

-- flush() or wait() from a trigger while the worker applies the write: an
-- error at once (the worker would wait for itself), and the write becomes
-- a dead letter; the queue goes on.
CREATE TABLE waits_in_trigger (id int);
CREATE FUNCTION waits_in_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.id = 1 THEN
        PERFORM asyncwrite.flush();
    ELSIF NEW.id = 2 THEN
        PERFORM asyncwrite.wait(1);
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER waits BEFORE INSERT ON waits_in_trigger
    FOR EACH ROW EXECUTE FUNCTION waits_in_trigger();
SELECT asyncwrite.insert('waits_in_trigger', jsonb_build_object('id', g)) IS NULL AS kept
  FROM generate_series(1, 3) g;
SELECT asyncwrite.flush();
SELECT id AS applied FROM waits_in_trigger;
SELECT payload->>'id' AS id, sqlstate, message FROM asyncwrite.dead_letters
 WHERE target = 'waits_in_trigger'::regclass ORDER BY id;
