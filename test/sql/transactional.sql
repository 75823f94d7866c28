-- Transactional submission (the default): a write counts only if its
-- transaction commits; savepoints, foreign keys to rows of the same
-- transaction, order, flush() inside a transaction, capture().
\set VERBOSITY default
\set SHOW_CONTEXT never

\i test/sql/include/try.sql

SHOW asyncwrite.transactional;
CREATE TABLE tx (id int PRIMARY KEY, note text);

-- Commit: applied.  Rollback: nothing.
BEGIN;
SELECT asyncwrite.insert('tx', '{"id": 1, "note": "committed"}') IS NULL AS queued_at_commit;
COMMIT;
BEGIN;
SELECT asyncwrite.insert('tx', '{"id": 2, "note": "rolled back"}') IS NULL AS queued_at_commit;
ROLLBACK;
SELECT asyncwrite.flush();
SELECT id, note FROM tx ORDER BY id;

-- Savepoints: a rolled-back savepoint drops its writes, a released one
-- keeps them, nested ones too.
BEGIN;
SELECT asyncwrite.insert('tx', '{"id": 10, "note": "before savepoint"}') IS NULL AS kept;
SAVEPOINT a;
SELECT asyncwrite.insert('tx', '{"id": 11, "note": "in a, rolled back"}') IS NULL AS kept;
SAVEPOINT b;
SELECT asyncwrite.insert('tx', '{"id": 12, "note": "in b, inside a"}') IS NULL AS kept;
ROLLBACK TO SAVEPOINT a;
SELECT asyncwrite.insert('tx', '{"id": 13, "note": "after rollback to a"}') IS NULL AS kept;
SAVEPOINT c;
SELECT asyncwrite.insert('tx', '{"id": 14, "note": "in c, released"}') IS NULL AS kept;
RELEASE SAVEPOINT c;
-- plpgsql exception blocks are subtransactions too.
DO $$
BEGIN
    PERFORM asyncwrite.insert('tx', '{"id": 15, "note": "in a failed block"}');
    RAISE EXCEPTION 'fail';
EXCEPTION WHEN OTHERS THEN
    PERFORM asyncwrite.insert('tx', '{"id": 16, "note": "in the handler"}');
END $$;
COMMIT;
SELECT asyncwrite.flush();
SELECT id, note FROM tx WHERE id >= 10 ORDER BY id;

-- transactional => false (or the setting off): queued at the call and
-- applied even if the caller rolls back, like autonomous logging.
BEGIN;
SELECT asyncwrite.insert('tx', '{"id": 20, "note": "autonomous"}', transactional => false) > 0 AS has_id;
SET LOCAL asyncwrite.transactional = off;
SELECT asyncwrite.insert('tx', '{"id": 21, "note": "autonomous by setting"}') > 0 AS has_id;
SELECT asyncwrite.insert('tx', '{"id": 22, "note": "transactional by argument"}', transactional => true) IS NULL AS queued_at_commit;
ROLLBACK;
SELECT asyncwrite.flush();
SELECT id, note FROM tx WHERE id >= 20 ORDER BY id;

-- A write may refer to a row its own transaction wrote: the foreign key
-- holds because the write is published only once the commit is visible.
CREATE TABLE parent (id int PRIMARY KEY);
CREATE TABLE child (id int PRIMARY KEY, parent_id int NOT NULL REFERENCES parent);
BEGIN;
INSERT INTO parent VALUES (1);
SELECT asyncwrite.insert('child', '{"id": 1, "parent_id": 1}') IS NULL AS queued_at_commit;
COMMIT;
-- Order across tables: a parent queued before its child is applied first.
BEGIN;
SELECT asyncwrite.insert('parent', '{"id": 2}') IS NULL AS parent_queued,
       asyncwrite.insert('child', '{"id": 2, "parent_id": 2}') IS NULL AS child_queued;
COMMIT;
SELECT asyncwrite.insert('parent', '{"id": 3}') IS NULL AS parent_queued;
SELECT asyncwrite.insert('child', '{"id": 3, "parent_id": 3}') IS NULL AS child_queued;
SELECT asyncwrite.flush();
SELECT c.id, c.parent_id, p.id IS NOT NULL AS parent_exists
  FROM child c LEFT JOIN parent p ON p.id = c.parent_id ORDER BY c.id;
SELECT count(*) AS dead_letters FROM asyncwrite.dead_letters WHERE target = 'child'::regclass;

-- A transaction that only queues writes takes no transaction id.
BEGIN;
SELECT asyncwrite.insert('tx', '{"id": 30}') IS NULL AS queued_at_commit;
SELECT pg_current_xact_id_if_assigned() IS NULL AS no_xid;
COMMIT;

-- flush() inside a transaction says it does not wait for that
-- transaction's own writes.
BEGIN;
SELECT asyncwrite.insert('tx', '{"id": 31}') IS NULL AS queued_at_commit;
SELECT asyncwrite.flush();
COMMIT;
SELECT asyncwrite.flush();
SELECT count(*) FROM tx WHERE id IN (30, 31);

-- last_write_id() after commit, and wait() on it.
BEGIN;
SELECT asyncwrite.insert('tx', '{"id": 32}') IS NULL AS queued_at_commit;
COMMIT;
SELECT asyncwrite.wait(asyncwrite.last_write_id());
SELECT count(*) FROM tx WHERE id = 32;

-- A transaction holding more than a quarter of the queue (8MB here)
-- writes synchronously instead, still only if it commits.
CREATE TABLE tx_big (id int PRIMARY KEY, blob text);
BEGIN;
SELECT count(asyncwrite.insert('tx_big', jsonb_build_object('id', g, 'blob', repeat('z', 500000))) IS NULL)
  FROM generate_series(1, 6) g;
SELECT count(*) AS visible_inside FROM tx_big;
ROLLBACK;
SELECT count(*) AS after_rollback FROM tx_big;
BEGIN;
SELECT count(asyncwrite.insert('tx_big', jsonb_build_object('id', g, 'blob', repeat('z', 500000))) IS NULL)
  FROM generate_series(1, 6) g;
COMMIT;
SELECT asyncwrite.flush();
SELECT count(*) AS after_commit FROM tx_big;

-- capture(): a trigger feeding an audit table, with the operation.
CREATE TABLE accounts (id int PRIMARY KEY, balance int, secret text);
CREATE TABLE accounts_audit (audit_id bigserial PRIMARY KEY, op text, id int, balance int,
                             at timestamptz DEFAULT now());
CREATE TRIGGER accounts_audit AFTER INSERT OR UPDATE OR DELETE ON accounts
    FOR EACH ROW EXECUTE FUNCTION asyncwrite.capture('accounts_audit', 'op');
INSERT INTO accounts VALUES (1, 100, 'x'), (2, 200, 'y');
UPDATE accounts SET balance = balance + 1 WHERE id = 1;
BEGIN;
UPDATE accounts SET balance = 0;
DELETE FROM accounts WHERE id = 2;
ROLLBACK;
DELETE FROM accounts WHERE id = 2;
SELECT asyncwrite.flush();
SELECT op, id, balance, at IS NOT NULL AS has_default FROM accounts_audit ORDER BY audit_id;
SELECT try($$CREATE TRIGGER bad AFTER INSERT ON accounts FOR EACH STATEMENT EXECUTE FUNCTION asyncwrite.capture('accounts_audit')$$);
SELECT try('INSERT INTO accounts VALUES (3, 1)');
DROP TRIGGER bad ON accounts;
SELECT try('SELECT asyncwrite.capture()');

-- capture() on a table the worker itself writes: the trigger fires in the
-- worker, resolves the audit table in the source's schema, and its rows
-- are queued when the worker's batch commits.
CREATE SCHEMA app;
CREATE TABLE app.src (id int PRIMARY KEY, v text);
CREATE TABLE app.src_audit (op text, id int, v text);
CREATE TRIGGER src_audit AFTER INSERT ON app.src
    FOR EACH ROW EXECUTE FUNCTION asyncwrite.capture('src_audit', 'op');
SELECT count(asyncwrite.insert('app.src', jsonb_build_object('id', g, 'v', 'v' || g)) IS NULL) AS queued
  FROM generate_series(1, 3) g;
SELECT asyncwrite.flush();
SELECT asyncwrite.flush();
SELECT op, id, v FROM app.src_audit ORDER BY id;

-- Two-phase commit: kept writes are submitted at COMMIT PREPARED, and
-- nothing at ROLLBACK PREPARED.
CREATE TABLE tx2pc (id int PRIMARY KEY);
BEGIN;
SELECT asyncwrite.insert('tx2pc', '{"id": 1}') IS NULL AS queued_at_commit;
PREPARE TRANSACTION 'aw_commit_me';
BEGIN;
SELECT asyncwrite.insert('tx2pc', '{"id": 2}') IS NULL AS queued_at_commit;
PREPARE TRANSACTION 'aw_roll_me_back';
SELECT asyncwrite.flush();
SELECT count(*) AS before_commit_prepared FROM tx2pc;
COMMIT PREPARED 'aw_commit_me';
ROLLBACK PREPARED 'aw_roll_me_back';
SELECT asyncwrite.flush();
SELECT id FROM tx2pc;
SELECT count(*) AS left_in_prepared_writes FROM asyncwrite.prepared_writes;

-- Going synchronous inside a savepoint that then rolls back keeps the
-- outer writes: they are queued at commit as if nothing happened.
CREATE TABLE tx_sp (id int PRIMARY KEY, blob text);
BEGIN;
SELECT asyncwrite.insert('tx_sp', '{"id": 1}') IS NULL AS kept;
SAVEPOINT s;
SELECT count(asyncwrite.insert('tx_sp', jsonb_build_object('id', g, 'blob', repeat('s', 500000))) IS NULL)
  FROM generate_series(100, 105) g;
ROLLBACK TO SAVEPOINT s;
SELECT asyncwrite.insert('tx_sp', '{"id": 2}') IS NULL AS kept;
COMMIT;
SELECT asyncwrite.flush();
SELECT id FROM tx_sp ORDER BY id;

-- Table DDL in the same transaction: kept writes go in before it.
CREATE TABLE tx_ddl (id int, extra int);
BEGIN;
SELECT asyncwrite.insert('tx_ddl', '{"id": 1, "extra": 5}') IS NULL AS kept;
ALTER TABLE tx_ddl DROP COLUMN extra;
SELECT asyncwrite.insert('tx_ddl', '{"id": 2}') IS NULL AS kept;
COMMIT;
SELECT asyncwrite.flush();
SELECT id FROM tx_ddl ORDER BY id;
SELECT count(*) AS dead_letters FROM asyncwrite.dead_letters WHERE target = 'tx_ddl'::regclass;
