\pset footer off
\echo '-- a table to write to, and the extension'
CREATE EXTENSION asyncwrite;
CREATE TABLE page_views (
    id        bigserial PRIMARY KEY,
    viewed_at timestamptz NOT NULL DEFAULT now(),
    user_id   bigint NOT NULL,
    path      text NOT NULL
);

\echo '-- pause the worker so that we can see the writes wait in the queue'
SELECT asyncwrite.pause();

\echo '-- each call checks and converts its row and returns at once; by default the'
\echo '-- write is queued when the transaction commits, and a rollback drops it'
BEGIN;
SELECT asyncwrite.insert('page_views', jsonb_build_object('user_id', u, 'path', '/home'))
  FROM generate_series(1, 5) AS u;
COMMIT;
BEGIN;
SELECT asyncwrite.insert('page_views', '{"user_id": 7, "path": "/rolled-back"}');
ROLLBACK;
\echo '-- transactional => false queues at the call (kept even on rollback) and returns a write id'
SELECT asyncwrite.insert('page_views', '{"user_id": 42, "path": "/pricing"}', transactional => false);

\echo '-- nothing is in the table yet; the queue holds the six writes'
SELECT count(*) AS rows_in_table FROM page_views;
SELECT database, state, queued, enqueued, applied FROM asyncwrite.stats;

\echo '-- capture(): an audit trigger feeding a table through the queue'
CREATE TABLE page_views_audit (op text, id bigint, path text);
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON page_views
  FOR EACH ROW EXECUTE FUNCTION asyncwrite.capture('page_views_audit', 'op');

\echo '-- resume, then flush() waits until everything queued so far is applied'
SELECT asyncwrite.resume();
SELECT asyncwrite.flush();
SELECT id, user_id, path, viewed_at IS NOT NULL AS has_default FROM page_views ORDER BY id;
SELECT database, state, queued, enqueued, applied, failed, batches FROM asyncwrite.stats;

\echo '-- 10000 writes from one statement, then flush()'
SELECT count(*) FROM (
  SELECT asyncwrite.insert('page_views', jsonb_build_object('user_id', g, 'path', '/bulk'))
    FROM generate_series(1, 10000) AS g) AS queued;
SELECT asyncwrite.flush();
SELECT count(*) AS rows_in_table FROM page_views;
SELECT database, queued, enqueued, applied, failed, batches FROM asyncwrite.stats;
\echo '-- the audit rows were queued by the trigger as each batch committed: flush again'
SELECT asyncwrite.flush();
SELECT op, count(*) AS audit_rows FROM page_views_audit GROUP BY op;
\echo '-- failed writes (none here) would be in asyncwrite.dead_letters'
SELECT count(*) AS dead_letters FROM asyncwrite.dead_letters;
