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

\echo '-- each call checks and converts its row, queues it and returns a write id at once'
SELECT asyncwrite.insert('page_views', jsonb_build_object('user_id', u, 'path', '/home'))
  FROM generate_series(1, 5) AS u;
SELECT asyncwrite.insert('page_views', '{"user_id": 42, "path": "/pricing"}');

\echo '-- nothing is in the table yet; the queue holds the six writes'
SELECT count(*) AS rows_in_table FROM page_views;
SELECT database, state, queued, enqueued, applied FROM asyncwrite.stats;

\echo '-- resume, then flush() waits until everything queued so far is applied'
SELECT asyncwrite.resume();
SELECT asyncwrite.flush();
SELECT id, user_id, path, viewed_at IS NOT NULL AS has_default FROM page_views ORDER BY id;
SELECT database, state, queued, enqueued, applied, failed, batches FROM asyncwrite.stats;

\echo '-- 10000 writes from one statement, then flush()'
SELECT count(asyncwrite.insert('page_views', jsonb_build_object('user_id', g, 'path', '/bulk')))
  FROM generate_series(1, 10000) AS g;
SELECT asyncwrite.flush();
SELECT count(*) AS rows_in_table FROM page_views;
SELECT database, queued, enqueued, applied, failed, batches FROM asyncwrite.stats;
