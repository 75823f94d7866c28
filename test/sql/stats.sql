-- The stats view and failure recording.
\set VERBOSITY default
\set SHOW_CONTEXT never
-- Writes are queued at the call here (ids at once, applied even on
-- rollback); transactional submission is tested in transactional.sql.
SET asyncwrite.transactional = off;

CREATE TABLE st (id int PRIMARY KEY, v text CHECK (v <> 'bad'));

SELECT enqueued AS e0, applied AS a0, failed AS f0, batches AS b0
  FROM asyncwrite.stats WHERE database = current_database() \gset

-- While paused, writes are counted as queued with their bytes and age.
SELECT asyncwrite.pause();
SELECT count(asyncwrite.insert('st', jsonb_build_object('id', g, 'v', 'v' || g)))
  FROM generate_series(1, 10) g;
SELECT state, queued, queued_bytes > 10 * 32 AS has_bytes,
       queued_bytes < capacity_bytes AS fits, capacity_bytes,
       enqueued - :e0 AS enqueued, applied - :a0 AS applied,
       oldest_queued_at <= now() AS has_oldest
  FROM asyncwrite.stats WHERE database = current_database();
SELECT asyncwrite.resume();
SELECT asyncwrite.flush();
SELECT state IN ('idle', 'applying') AS running, queued, queued_bytes,
       applied - :a0 AS applied, failed - :f0 AS failed,
       batches - :b0 AS batches, oldest_queued_at, last_applied_at <= now() AS applied_at
  FROM asyncwrite.stats WHERE database = current_database();

-- A write that fails to apply goes to dead_letters; the others apply.
SELECT asyncwrite.pause();
SELECT asyncwrite.insert('st', '{"id": 11, "v": "ok"}') > 0 AS queued;
SELECT asyncwrite.insert('st', '{"id": 12, "v": "bad"}') AS bad_check \gset
SELECT asyncwrite.insert('st', '{"id": 1, "v": "duplicate"}') AS bad_dup \gset
SELECT asyncwrite.insert('st', '{"id": 13, "v": "ok"}') > 0 AS queued;
SELECT asyncwrite.resume();
SELECT asyncwrite.flush();
SELECT id, v FROM st WHERE id > 10 ORDER BY id;
SELECT write_id = :bad_check AS is_bad_check, target_name, target = 'st'::regclass AS target_ok,
       operation, payload, role = current_user::regrole::oid AS role_ok,
       attempts, sqlstate, message, detail
  FROM asyncwrite.dead_letters ORDER BY id;
SELECT failed - :f0 AS failed, applied - :a0 AS applied
  FROM asyncwrite.stats WHERE database = current_database();
