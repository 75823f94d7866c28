-- The SQL API: insert in its three forms, flush, wait, pause, resume,
-- asyncwrite.enabled, defaults evaluated at call time.
CREATE EXTENSION asyncwrite;

\set VERBOSITY default
\set SHOW_CONTEXT never

\i test/sql/include/try.sql

CREATE TABLE events (
    id         bigserial PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now(),
    who        name NOT NULL DEFAULT current_user,
    user_id    bigint,
    kind       text NOT NULL DEFAULT 'view',
    payload    jsonb
);

-- By default a write is queued when the calling transaction commits: it
-- has no write id until then, and last_write_id() gives it after commit.
SELECT asyncwrite.insert('events', '{"user_id": 0}') AS queued_at_commit;
SELECT asyncwrite.last_write_id() AS w0 \gset
SELECT asyncwrite.wait(:w0);
SELECT count(*) AS applied FROM events WHERE user_id = 0;
DELETE FROM events;

-- Queued at the call (transactional => false), a write gets its id at
-- once; ids increase per database.
SELECT asyncwrite.insert('events', '{"user_id": 1}', transactional => false) AS w1 \gset
SELECT asyncwrite.insert('events', '{"user_id": 2, "kind": "click"}'::jsonb, transactional => false) AS w2 \gset
SELECT asyncwrite.insert('events', ROW(100, now(), 'someone', 3, 'row', '{"a": 1}')::events, transactional => false) AS w3 \gset
SELECT :w2 = :w1 + 1 AS consecutive, :w3 = :w2 + 1 AS consecutive, :w1 > :w0 AS after_w0;
SELECT asyncwrite.last_write_id() = :w3 AS last_write_id;

SELECT asyncwrite.flush();
SELECT user_id, kind, who = current_user AS who_is_caller, payload
  FROM events ORDER BY user_id;

-- wait() for one write, with and without a timeout.
SELECT asyncwrite.insert('events', '{"user_id": 4}', transactional => false) AS w4 \gset
SELECT asyncwrite.wait(:w4);
SELECT asyncwrite.wait(:w4, '1 second');
SELECT count(*) FROM events WHERE user_id = 4;

-- Defaults are evaluated at call time, in the caller's session: now() is
-- the caller's transaction time.  A NOT NULL column whose default draws
-- from a sequence (serial, identity) is left to the worker, which draws
-- the value when it applies the row: the caller's commit then needs no WAL
-- flush.  The caller's right to use the sequence is still checked at once.
SELECT last_value AS seq_before_call FROM events_id_seq \gset
BEGIN;
SELECT asyncwrite.insert('events', '{"user_id": 5}') IS NULL AS queued_at_commit;
SELECT now() AS caller_now \gset
SELECT last_value = :seq_before_call AS sequence_untouched_by_call FROM events_id_seq;
COMMIT;
SELECT asyncwrite.flush();
SELECT created_at = :'caller_now'::timestamptz AS default_is_call_time,
       id = :seq_before_call + 1 AS id_drawn_when_applied
  FROM events WHERE user_id = 5;
-- An explicit value is kept; an explicit NULL could never be inserted.
SELECT asyncwrite.insert('events', '{"id": 1000, "user_id": 50}') IS NULL AS queued_at_commit;
SELECT try($$SELECT asyncwrite.insert('events', '{"id": null, "user_id": 51}')$$);
SELECT asyncwrite.flush();
SELECT id, user_id FROM events WHERE user_id IN (50, 51);
-- Identity columns are drawn by the worker too.
CREATE TABLE ident (id int GENERATED ALWAYS AS IDENTITY, v text);
SELECT asyncwrite.insert('ident', jsonb_build_object('v', g::text)) IS NULL AS queued
  FROM generate_series(1, 3) g;
SELECT asyncwrite.flush();
SELECT id, v FROM ident ORDER BY id;
DROP TABLE ident;

-- A composite of another type is matched to columns by name.
CREATE TYPE partial_event AS (user_id bigint, kind text);
SELECT asyncwrite.insert('events', ROW(6, 'typed')::partial_event) IS NULL AS queued_at_commit;
SELECT asyncwrite.flush();
SELECT user_id, kind, who = current_user AS who_is_caller FROM events WHERE user_id = 6;

-- pause() holds the writes in the queue; flush() with a timeout says false.
SELECT asyncwrite.pause();
SELECT asyncwrite.insert('events', '{"user_id": 7}', transactional => false) AS w7 \gset
SELECT asyncwrite.flush('100 ms') AS flushed_while_paused;
SELECT asyncwrite.wait(:w7, '10 ms') AS applied_while_paused;
SELECT count(*) AS rows_while_paused FROM events WHERE user_id = 7;
SELECT state, queued FROM asyncwrite.stats WHERE database = current_database();
SELECT asyncwrite.resume();
SELECT asyncwrite.flush('1 min') AS flushed_after_resume;
SELECT count(*) AS rows_after_resume FROM events WHERE user_id = 7;
SELECT state, queued FROM asyncwrite.stats WHERE database = current_database();

-- With asyncwrite.enabled off the write happens at once, in the caller's
-- transaction, with the same result; nothing is queued.
SELECT enqueued AS enqueued_before FROM asyncwrite.stats WHERE database = current_database() \gset
SET asyncwrite.enabled = off;
BEGIN;
SELECT asyncwrite.insert('events', '{"user_id": 8, "kind": "sync"}') AS write_id;
SELECT count(*) AS visible_in_same_transaction FROM events WHERE user_id = 8;
ROLLBACK;
SELECT count(*) AS after_rollback FROM events WHERE user_id = 8;
SELECT asyncwrite.insert('events', '{"user_id": 8, "kind": "sync"}') IS NULL AS no_write_id;
RESET asyncwrite.enabled;
SELECT enqueued - :enqueued_before AS enqueued_meanwhile
  FROM asyncwrite.stats WHERE database = current_database();
SELECT user_id, kind FROM events WHERE user_id = 8;

-- flush() and wait() argument checks.
SELECT try($$SELECT asyncwrite.flush('-1 second')$$);
SELECT try($$SELECT asyncwrite.wait(NULL)$$);
SELECT try($$SELECT asyncwrite.wait(0)$$);
SELECT try(format('SELECT asyncwrite.wait(%s)', :w7 + 1000000));

-- The settings and their defaults.
SELECT name, setting, unit, context FROM pg_settings
 WHERE name LIKE 'asyncwrite.%' ORDER BY name;

-- Ordinary roles may queue, flush and watch, but not pause.
CREATE ROLE aw_api_user;
GRANT INSERT ON events TO aw_api_user;
GRANT USAGE ON SEQUENCE events_id_seq TO aw_api_user;
SET ROLE aw_api_user;
SELECT asyncwrite.insert('events', '{"user_id": 9}') IS NULL AS queued_at_commit;
SELECT asyncwrite.flush();
SELECT try('SELECT asyncwrite.pause()');
SELECT try('SELECT asyncwrite.resume()');
SELECT count(*) >= 1 AS sees_stats FROM asyncwrite.stats;
RESET ROLE;
SELECT user_id, who FROM events WHERE user_id = 9;
