-- upsert, update, delete, increment: keys, coalescing, errors, privileges.
\set VERBOSITY default
\set SHOW_CONTEXT never

\i test/sql/include/try.sql

DELETE FROM asyncwrite.dead_letters;
CREATE TABLE kv (k int PRIMARY KEY, v text, n int DEFAULT 0, note text DEFAULT 'new',
                 CHECK (v IS DISTINCT FROM 'bad'));
CREATE TABLE kv2 (a int, b text, v text, UNIQUE (a, b));

-- upsert: insert, then update of the given columns only.
SELECT asyncwrite.upsert('kv', '{"k": 1, "v": "one"}') IS NULL AS queued_at_commit;
SELECT asyncwrite.flush();
SELECT asyncwrite.upsert('kv', '{"k": 1, "v": "uno"}');
SELECT asyncwrite.upsert('kv', '{"k": 2, "v": "two", "note": "given"}');
SELECT asyncwrite.flush();
SELECT k, v, n, note FROM kv ORDER BY k;
-- With only the key given: DO NOTHING.
SELECT asyncwrite.upsert('kv', '{"k": 1}');
-- Other unique key as conflict columns.
SELECT asyncwrite.upsert('kv2', '{"a": 1, "b": "x", "v": "first"}', conflict_columns => '{a,b}');
SELECT asyncwrite.upsert('kv2', '{"a": 1, "b": "x", "v": "second"}', conflict_columns => '{b,a}');
SELECT asyncwrite.flush();
SELECT k, v FROM kv WHERE k = 1;
SELECT a, b, v FROM kv2;

-- 1,000 upserts of one key in one transaction collapse to the last.
BEGIN;
SELECT count(asyncwrite.upsert('kv', jsonb_build_object('k', 10, 'v', 'v' || g)) IS NULL)
  FROM generate_series(1, 1000) g;
COMMIT;
SELECT asyncwrite.flush();
SELECT k, v FROM kv WHERE k = 10;

-- update and delete by key; a missing row is no error.
SELECT asyncwrite.update('kv', '{"k": 2}', '{"v": "deux", "n": 5}');
SELECT asyncwrite.update('kv', '{"k": 99}', '{"v": "nobody"}');
SELECT asyncwrite.update('kv2', '{"b": "x", "a": 1}', '{"v": "third"}');
SELECT asyncwrite.delete('kv', '{"k": 1}');
SELECT asyncwrite.flush();
SELECT k, v, n, note FROM kv ORDER BY k;
SELECT a, b, v FROM kv2;

-- Consecutive updates of one key: the last wins, as one by one.
SELECT count(asyncwrite.update('kv', '{"k": 2}', jsonb_build_object('v', 'u' || g)) IS NULL)
  FROM generate_series(1, 50) g;
SELECT asyncwrite.flush();
SELECT k, v FROM kv WHERE k = 2;

-- increment: adds, inserting defaults plus deltas when missing; increments
-- of a key applied together are summed.
CREATE TABLE counters (name text PRIMARY KEY, hits bigint NOT NULL DEFAULT 0,
                       total numeric NOT NULL DEFAULT 0, created timestamptz DEFAULT now());
BEGIN;
SELECT count(asyncwrite.increment('counters', jsonb_build_object('name', 'c' || (g % 5)),
                                  jsonb_build_object('hits', 1, 'total', 0.5)) IS NULL)
  FROM generate_series(1, 1000) g;
COMMIT;
SELECT asyncwrite.increment('counters', '{"name": "c0"}', '{"hits": 10}');
SELECT asyncwrite.flush();
SELECT name, hits, total, created IS NOT NULL AS has_default FROM counters ORDER BY name;

-- Errors at call time, nothing queued.
SELECT coalesce(sum(enqueued), 0) AS e0 FROM asyncwrite.stats \gset
SELECT stmt, try(stmt) FROM (VALUES
    ($$SELECT asyncwrite.upsert('kv2', '{"a": 1, "b": "x"}')$$),
    ($$SELECT asyncwrite.upsert('kv', '{"k": 1}', conflict_columns => '{v}')$$),
    ($$SELECT asyncwrite.upsert('kv', '{"k": 1}', conflict_columns => '{nope}')$$),
    ($$SELECT asyncwrite.update('kv', '{"v": "x"}', '{"n": 1}')$$),
    ($$SELECT asyncwrite.update('kv', '{"k": 1}', '{"k": 2}')$$),
    ($$SELECT asyncwrite.update('kv', '{"k": null}', '{"n": 1}')$$),
    ($$SELECT asyncwrite.update('kv', '{"k": 1}', '{}')$$),
    ($$SELECT asyncwrite.update('kv', '{"k": 1}', '{"nope": 1}')$$),
    ($$SELECT asyncwrite.update('kv', '[1]', '{"n": 1}')$$),
    ($$SELECT asyncwrite.delete('kv', '{"n": 1}')$$),
    ($$SELECT asyncwrite.delete('kv', NULL)$$),
    ($$SELECT asyncwrite.increment('counters', '{"name": "x"}', '{"created": "2024-01-01"}')$$),
    ($$SELECT asyncwrite.increment('counters', '{"name": "x"}', '{"hits": "many"}')$$),
    ($$SELECT asyncwrite.increment('kv2', '{"a": 1}', '{"a": 1}')$$)
) AS cases(stmt);
SELECT coalesce(sum(enqueued), 0) - :e0 AS enqueued_by_bad_calls FROM asyncwrite.stats;

-- Privileges: each kind needs what its statement needs.
CREATE ROLE aw_writes_user;
GRANT INSERT, SELECT ON kv TO aw_writes_user;
SET ROLE aw_writes_user;
SELECT try($$SELECT asyncwrite.upsert('kv', '{"k": 3, "v": "x"}')$$) AS upsert_without_update;
SELECT try($$SELECT asyncwrite.update('kv', '{"k": 3}', '{"v": "x"}')$$) AS update_without_update;
SELECT try($$SELECT asyncwrite.delete('kv', '{"k": 3}')$$) AS delete_without_delete;
SELECT try($$SELECT asyncwrite.upsert('kv', '{"k": 3}')$$) AS upsert_do_nothing;
RESET ROLE;
GRANT UPDATE (v) ON kv TO aw_writes_user;
SET ROLE aw_writes_user;
SELECT try($$SELECT asyncwrite.upsert('kv', '{"k": 3, "v": "x"}')$$) AS upsert_with_column_update;
SELECT try($$SELECT asyncwrite.upsert('kv', '{"k": 3, "v": "x", "n": 1}')$$) AS upsert_other_column;
RESET ROLE;
SELECT asyncwrite.flush();
SELECT k, v FROM kv WHERE k = 3;

-- A failing upsert is a dead letter with its columns, and can be retried.
SELECT asyncwrite.upsert('kv', '{"k": 2, "v": "bad"}');
SELECT asyncwrite.flush();
SELECT operation, payload->>'v' AS v, key_columns, set_columns, sqlstate FROM asyncwrite.dead_letters;
ALTER TABLE kv DROP CONSTRAINT kv_v_check;
SELECT asyncwrite.retry_failed();
SELECT asyncwrite.flush();
SELECT k, v FROM kv WHERE k = 2;
SELECT count(*) AS dead_letters FROM asyncwrite.dead_letters;

-- Kinds interleave in order: insert, update, delete, upsert of one key.
SELECT asyncwrite.insert('kv', '{"k": 50, "v": "a"}', transactional => false) > 0 AS q1,
       asyncwrite.update('kv', '{"k": 50}', '{"v": "b"}', transactional => false) > 0 AS q2,
       asyncwrite.delete('kv', '{"k": 50}', transactional => false) > 0 AS q3,
       asyncwrite.upsert('kv', '{"k": 50, "v": "c"}', transactional => false) > 0 AS q4,
       asyncwrite.increment('counters', '{"name": "c1"}', '{"hits": 1}', transactional => false) > 0 AS q5;
SELECT asyncwrite.flush();
SELECT k, v FROM kv WHERE k = 50;

-- Review fixes: schema USAGE for update/delete, key equality of the key's
-- own index, only addable numeric types for increment, SELECT on conflict columns.
CREATE SCHEMA ws;
CREATE TABLE ws.t (id int PRIMARY KEY, v int);
INSERT INTO ws.t VALUES (1, 1), (2, 2);
CREATE ROLE aw_ws_user;
GRANT UPDATE, DELETE, SELECT ON ws.t TO aw_ws_user;
SELECT 'ws.t'::regclass::oid AS ws_oid \gset
SET ROLE aw_ws_user;
SELECT try(format($$SELECT asyncwrite.update(%s, '{"id": 2}', '{"v": 99}')$$, :ws_oid)) AS update_without_usage;
SELECT try(format($$SELECT asyncwrite.delete(%s, '{"id": 1}')$$, :ws_oid)) AS delete_without_usage;
RESET ROLE;
CREATE TABLE oid_counter (k int PRIMARY KEY, o oid DEFAULT 0);
SELECT try($$SELECT asyncwrite.increment('oid_counter', '{"k": 1}', '{"o": 5}')$$) AS oid_delta;
CREATE TABLE sel_key (k int PRIMARY KEY, n int DEFAULT 0);
CREATE ROLE aw_sel_user;
GRANT INSERT ON sel_key TO aw_sel_user;
GRANT UPDATE (n), SELECT (n) ON sel_key TO aw_sel_user;
SET ROLE aw_sel_user;
SELECT try($$SELECT asyncwrite.increment('sel_key', '{"k": 1}', '{"n": 1}')$$) AS increment_without_key_select;
SELECT try($$SELECT asyncwrite.upsert('sel_key', '{"k": 1, "n": 1}')$$) AS upsert_without_key_select;
RESET ROLE;

-- A key type whose equal values can be stored differently (numeric): the
-- updates of one key still end with the last one.
CREATE TABLE num_key (id numeric PRIMARY KEY, v int);
INSERT INTO num_key VALUES (1, 0);
SELECT asyncwrite.pause();
SELECT count(asyncwrite.update('num_key', jsonb_build_object('id', k), jsonb_build_object('v', g), transactional => false) IS NULL)
  FROM (VALUES (1, '1'), (2, '1.0'), (3, '1'), (4, '1.00')) AS u(g, k);
SELECT asyncwrite.resume();
SELECT asyncwrite.flush();
SELECT id, v FROM num_key;

-- Keys are matched with the key index's own, schema-qualified equality
-- operator (the worker's search_path holds only pg_catalog).
CREATE TABLE txt_key (k text PRIMARY KEY, v int);
INSERT INTO txt_key VALUES ('Abc', 1), ('abc', 1);
SELECT asyncwrite.update('txt_key', '{"k": "Abc"}', '{"v": 2}');
SELECT asyncwrite.delete('txt_key', '{"k": "abc"}');
SELECT asyncwrite.flush();
SELECT k, v FROM txt_key;
