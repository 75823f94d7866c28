-- What applications and drivers pass: JSON as jsonb, json, text, varchar
-- or a parameter of no type, in every write function; many rows per call;
-- what became of a write (status); DISCARD ALL; composites with fields the
-- target lacks.
\i test/sql/include/try.sql
SET asyncwrite.transactional = off;

-- Every write function with its JSON arguments typed each way a driver
-- types them (psycopg's Json() and pgjdbc's PGobject send json, setString
-- sends varchar or text, node-postgres sends no type).  The oracle: the
-- same writes as statements, into a twin table.
CREATE TABLE app_t (id int PRIMARY KEY, v text, n int NOT NULL DEFAULT 0);
CREATE TABLE app_o (LIKE app_t INCLUDING ALL);
PREPARE ins_jsonb(jsonb) AS SELECT asyncwrite.insert('app_t', $1) > 0;
PREPARE ins_json(json) AS SELECT asyncwrite.insert('app_t', $1) > 0;
PREPARE ins_text(text) AS SELECT asyncwrite.insert('app_t', $1) > 0;
PREPARE ins_varchar(varchar) AS SELECT asyncwrite.insert('app_t', $1) > 0;
PREPARE ins_untyped AS SELECT asyncwrite.insert('app_t', $1) > 0;
EXECUTE ins_jsonb('{"id": 1, "v": "jsonb"}');
EXECUTE ins_json('{"id": 2, "v": "json"}');
EXECUTE ins_text('{"id": 3, "v": "text"}');
EXECUTE ins_varchar('{"id": 4, "v": "varchar"}');
EXECUTE ins_untyped('{"id": 5, "v": "untyped"}');
INSERT INTO app_o (id, v) VALUES (1, 'jsonb'), (2, 'json'), (3, 'text'), (4, 'varchar'), (5, 'untyped');

PREPARE ups_json(json) AS SELECT asyncwrite.upsert('app_t', $1) > 0;
PREPARE ups_text(text) AS SELECT asyncwrite.upsert('app_t', $1) > 0;
PREPARE ups_varchar(varchar) AS SELECT asyncwrite.upsert('app_t', $1, conflict_columns => '{id}') > 0;
PREPARE ups_untyped AS SELECT asyncwrite.upsert('app_t', $1) > 0;
EXECUTE ups_json('{"id": 1, "v": "upsert json"}');
EXECUTE ups_text('{"id": 2, "v": "upsert text"}');
EXECUTE ups_varchar('{"id": 6, "v": "upsert varchar"}');
EXECUTE ups_untyped('{"id": 7, "v": "upsert untyped"}');
INSERT INTO app_o (id, v) VALUES (1, 'upsert json'), (2, 'upsert text'), (6, 'upsert varchar'), (7, 'upsert untyped')
    ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v;

PREPARE upd_json(json, json) AS SELECT asyncwrite.update('app_t', $1, $2) > 0;
PREPARE upd_text(text, text) AS SELECT asyncwrite.update('app_t', $1, $2) > 0;
PREPARE upd_varchar(varchar, varchar) AS SELECT asyncwrite.update('app_t', $1, $2) > 0;
PREPARE upd_untyped AS SELECT asyncwrite.update('app_t', $1, $2) > 0;
EXECUTE upd_json('{"id": 3}', '{"v": "update json"}');
EXECUTE upd_text('{"id": 4}', '{"v": "update text"}');
EXECUTE upd_varchar('{"id": 5}', '{"v": "update varchar"}');
EXECUTE upd_untyped('{"id": 6}', '{"v": "update untyped"}');
UPDATE app_o SET v = 'update json' WHERE id = 3;
UPDATE app_o SET v = 'update text' WHERE id = 4;
UPDATE app_o SET v = 'update varchar' WHERE id = 5;
UPDATE app_o SET v = 'update untyped' WHERE id = 6;

PREPARE inc_json(json, json) AS SELECT asyncwrite.increment('app_t', $1, $2) > 0;
PREPARE inc_text(text, text) AS SELECT asyncwrite.increment('app_t', $1, $2) > 0;
PREPARE inc_varchar(varchar, varchar) AS SELECT asyncwrite.increment('app_t', $1, $2) > 0;
PREPARE inc_untyped AS SELECT asyncwrite.increment('app_t', $1, $2) > 0;
EXECUTE inc_json('{"id": 1}', '{"n": 1}');
EXECUTE inc_text('{"id": 1}', '{"n": 10}');
EXECUTE inc_varchar('{"id": 2}', '{"n": 100}');
EXECUTE inc_untyped('{"id": 8}', '{"n": 1000}');
UPDATE app_o SET n = n + 11 WHERE id = 1;
UPDATE app_o SET n = n + 100 WHERE id = 2;
INSERT INTO app_o (id, n) VALUES (8, 1000);

PREPARE del_json(json) AS SELECT asyncwrite.delete('app_t', $1) > 0;
PREPARE del_text(text) AS SELECT asyncwrite.delete('app_t', $1) > 0;
PREPARE del_varchar(varchar) AS SELECT asyncwrite.delete('app_t', $1) > 0;
PREPARE del_untyped AS SELECT asyncwrite.delete('app_t', $1) > 0;
EXECUTE del_json('{"id": 4}');
EXECUTE del_text('{"id": 5}');
EXECUTE del_varchar('{"id": 6}');
EXECUTE del_untyped('{"id": 7}');
DELETE FROM app_o WHERE id IN (4, 5, 6, 7);

-- Literals and casts resolve without ambiguity too.
SELECT asyncwrite.insert('app_t', '{"id": 9}'::json) > 0 AS json_cast,
       asyncwrite.update('app_t', '{"id": 9}', '{"v": "nine"}'::json) > 0 AS mixed_literal,
       asyncwrite.upsert('app_t', '{"id": 9, "n": 9}'::varchar) > 0 AS varchar_cast;
INSERT INTO app_o (id, v, n) VALUES (9, 'nine', 9);
SELECT asyncwrite.flush();
SELECT (SELECT array_agg(t ORDER BY id) FROM app_t t) AS queued_rows,
       (SELECT array_agg(o ORDER BY id) FROM app_o o) AS oracle_rows;
SELECT (SELECT array_agg(t ORDER BY id) FROM app_t t)::text =
       (SELECT array_agg(o ORDER BY id) FROM app_o o)::text AS same_as_oracle;

-- What is not JSON fails as a cast to jsonb would, and queues nothing.
SELECT enqueued AS enq0 FROM asyncwrite.stats WHERE database = current_database() \gset
SELECT try($$EXECUTE ins_json('{"id": ')$$);
SELECT try($$EXECUTE upd_text('{"id": 1}', 'nope')$$);
SELECT try($$EXECUTE del_varchar('[1]')$$);
SELECT try($$SELECT asyncwrite.update('app_t', '{"id": 1}'::jsonb, '{"v": "x"}'::text)$$);
SELECT enqueued - :enq0 AS enqueued_by_errors FROM asyncwrite.stats WHERE database = current_database();

-- Many rows in one call: a JSON array of objects (jsonb, json or text) or
-- an array of composites.  Queued at once they take consecutive ids and
-- the call returns the last one.
TRUNCATE app_t, app_o;
SELECT asyncwrite.last_write_id() AS before_many \gset
SELECT asyncwrite.insert('app_t', '[{"id": 1, "v": "a"}, {"id": 2}, {"id": 3, "n": 3}]'::jsonb) - :before_many AS last_of_three;
SELECT asyncwrite.insert('app_t', '[{"id": 4}, {"id": 5, "v": "e"}]'::json) - :before_many AS last_of_five;
SELECT asyncwrite.insert('app_t', '[{"id": 6}]') - :before_many AS last_of_six;
SELECT asyncwrite.insert('app_t', ARRAY[ROW(7, 'g', 7), ROW(8, NULL, 8)]::app_t[]) - :before_many AS last_of_eight;
SELECT asyncwrite.insert('app_t', '[]') IS NULL AS empty_queues_nothing;
INSERT INTO app_o (id, v, n) VALUES (1, 'a', 0), (2, NULL, 0), (3, NULL, 3), (4, NULL, 0),
    (5, 'e', 0), (6, NULL, 0), (7, 'g', 7), (8, NULL, 8);
SELECT asyncwrite.flush();
SELECT (SELECT array_agg(t ORDER BY id) FROM app_t t)::text =
       (SELECT array_agg(o ORDER BY id) FROM app_o o)::text AS same_as_oracle,
       (SELECT count(*) FROM app_t) AS rows;

-- JSON text is split into its elements by the JSON parser: brackets, braces
-- and commas inside strings, nested arrays and objects, escapes, blanks and
-- duplicate keys (the last one counts) give the rows the same array gives
-- as jsonb (the oracle).
CREATE TABLE app_split (id int PRIMARY KEY, tags text[], doc jsonb, s text);
CREATE TABLE app_split_o (LIKE app_split INCLUDING ALL);
SELECT asyncwrite.insert('app_split', $j$ 
  [ {"id": 1, "tags": ["a", "b]", "{c,"], "doc": {"x": [1, {"y": "}"}]}, "s": "he said \"[x]\", \u00e9"} ,
    {"id": 2, "s": "a", "s": "b"}, {"id": 3, "doc": []}, {"id": 4, "tags": [], "doc": null} ] $j$::text) > 0 AS text_array;
SELECT asyncwrite.insert('app_split_o', $j$ 
  [ {"id": 1, "tags": ["a", "b]", "{c,"], "doc": {"x": [1, {"y": "}"}]}, "s": "he said \"[x]\", \u00e9"} ,
    {"id": 2, "s": "a", "s": "b"}, {"id": 3, "doc": []}, {"id": 4, "tags": [], "doc": null} ] $j$::jsonb) > 0 AS jsonb_array;
SELECT asyncwrite.flush();
SELECT * FROM app_split ORDER BY id;
SELECT (SELECT array_agg(t ORDER BY id) FROM app_split t)::text =
       (SELECT array_agg(o ORDER BY id) FROM app_split_o o)::text AS same_as_jsonb;
SELECT try($$SELECT asyncwrite.insert('app_split', '[{"id": 10}, {"id": ]')$$);
SELECT try($$SELECT asyncwrite.insert('app_split', '[{"id": 10}] x')$$);
SELECT count(*) AS rows_after_errors FROM app_split;
DROP TABLE app_split, app_split_o;

-- All or nothing: an element that fails conversion fails the call, naming
-- the element, and no row of the call is queued.
SELECT enqueued AS enq0 FROM asyncwrite.stats WHERE database = current_database() \gset
\set VERBOSITY default
SELECT asyncwrite.insert('app_t', '[{"id": 10}, {"id": 11, "nope": 1}, {"id": 12}]');
SELECT asyncwrite.insert('app_t', '[{"id": 10}, {"id": "x"}]');
SELECT asyncwrite.insert('app_t', '[{"id": 10}, 7]');
SELECT asyncwrite.insert('app_t', ARRAY[ROW(10, 'a', 1), NULL]::app_t[]);
\set VERBOSITY terse
SELECT enqueued - :enq0 AS enqueued_by_errors FROM asyncwrite.stats WHERE database = current_database();
-- Transactional: kept until commit, dropped with a rollback.
BEGIN;
SELECT asyncwrite.insert('app_t', '[{"id": 20}, {"id": 21}]', transactional => true) IS NULL AS kept;
ROLLBACK;
BEGIN;
SELECT asyncwrite.insert('app_t', '[{"id": 22}, {"id": 23}]', transactional => true) IS NULL AS kept;
COMMIT;
SELECT asyncwrite.flush();
SELECT array_agg(id ORDER BY id) AS ids FROM app_t WHERE id >= 20;
-- With asyncwrite.enabled off every row is written at once, as an INSERT.
SET asyncwrite.enabled = off;
SELECT asyncwrite.insert('app_t', '[{"id": 30}, {"id": 31}]') IS NULL AS written_now;
SELECT try($$SELECT asyncwrite.insert('app_t', '[{"id": 32}, {"id": 30}]')$$);
RESET asyncwrite.enabled;
SELECT array_agg(id ORDER BY id) AS ids FROM app_t WHERE id >= 30;

-- asyncwrite.status(write_id): queued, applied, failed with its dead
-- letter, or unknown.
CREATE TABLE app_s (id int PRIMARY KEY CHECK (id > 0));
SELECT asyncwrite.pause();
SELECT asyncwrite.insert('app_s', '{"id": 1}') AS ok_id \gset
SELECT asyncwrite.insert('app_s', '{"id": -1}') AS bad_id \gset
SELECT state, dead_letter_id FROM asyncwrite.status(:ok_id);
SELECT asyncwrite.resume();
SELECT asyncwrite.flush();
SELECT state, dead_letter_id IS NULL AS no_dead_letter FROM asyncwrite.status(:ok_id);
SELECT s.state, s.dead_letter_id = d.id AS its_dead_letter, d.sqlstate
  FROM asyncwrite.status(:bad_id) s, asyncwrite.dead_letters d WHERE d.write_id = :bad_id;
SELECT state FROM asyncwrite.status(0);
SELECT state FROM asyncwrite.status(:bad_id + 1000000);
SELECT try('SELECT asyncwrite.status(NULL)');
-- wait() says only that the write is done; status() says how.
SELECT asyncwrite.wait(:bad_id) AS done;
-- Any role may ask, and learns nothing of another role's row.
CREATE ROLE aw_app_other;
SET ROLE aw_app_other;
SELECT state, dead_letter_id IS NOT NULL AS failed FROM asyncwrite.status(:bad_id);
SELECT count(*) AS dead_letters_seen FROM asyncwrite.dead_letters;
RESET ROLE;
DROP ROLE aw_app_other;
DELETE FROM asyncwrite.dead_letters;

-- DISCARD ALL (a pooler's server_reset_query) makes the session new: the
-- next client does not see this one's write ids.
SELECT asyncwrite.last_write_id() > 0 AS has_id;
DISCARD ALL;
SELECT asyncwrite.last_write_id() IS NULL AS forgotten;
SET asyncwrite.transactional = off;

-- Composites are matched to columns by name; fields the target lacks are
-- left out, by insert() as by capture(): a trigger passing NEW into an
-- audit table that keeps only some columns works either way.  A JSON key
-- the target lacks stays an error (42703, above): it is a typo.
CREATE TABLE app_src (id int PRIMARY KEY, v text, secret text);
CREATE TABLE app_audit_insert (id int, v text);
CREATE TABLE app_audit_capture (id int, v text);
CREATE FUNCTION app_audit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM asyncwrite.insert('app_audit_insert', NEW);
    RETURN NEW;
END $$;
CREATE TRIGGER by_insert AFTER INSERT ON app_src FOR EACH ROW EXECUTE FUNCTION app_audit();
CREATE TRIGGER by_capture AFTER INSERT ON app_src FOR EACH ROW
    EXECUTE FUNCTION asyncwrite.capture('app_audit_capture');
INSERT INTO app_src VALUES (1, 'one', 's1'), (2, 'two', 's2');
SELECT asyncwrite.flush();
SELECT (SELECT array_agg(a ORDER BY id) FROM app_audit_insert a)::text AS by_insert,
       (SELECT array_agg(a ORDER BY id) FROM app_audit_capture a)::text AS by_capture;
-- A field of the target's column name but another type is converted as
-- before, and fails the call when it cannot be.
CREATE TYPE app_pair AS (id text, extra int);
SELECT asyncwrite.insert('app_audit_insert', ROW('3', 0)::app_pair) > 0 AS converted;
SELECT try($$SELECT asyncwrite.insert('app_audit_insert', ROW('three', 0)::app_pair)$$);
SELECT asyncwrite.flush();
SELECT id, v FROM app_audit_insert WHERE id = 3;

DROP TABLE app_t, app_o, app_s, app_src, app_audit_insert, app_audit_capture;
DROP FUNCTION app_audit();
DROP TYPE app_pair;
