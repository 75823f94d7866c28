-- Conversion of jsonb and composite values to column types, in the
-- caller's session settings.
\set VERBOSITY default
\set SHOW_CONTEXT never
-- Writes are queued at the call here (ids at once, applied even on
-- rollback); transactional submission is tested in transactional.sql.
SET asyncwrite.transactional = off;

\i test/sql/include/try.sql

CREATE DOMAIN positive_int AS int CHECK (VALUE > 0);
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE conv (
    id     int PRIMARY KEY,
    ts     timestamptz,
    d      date,
    num    numeric(6,2),
    f      float8,
    b      boolean,
    tags   text[],
    matrix int[],
    j      json,
    jb     jsonb,
    m      mood,
    p      positive_int,
    bytes  bytea,
    big    text
);

-- Dates and times are read in the caller's DateStyle and TimeZone.
SET DateStyle = 'SQL, DMY';
SET TimeZone = 'Europe/Paris';
SELECT asyncwrite.insert('conv', '{"id": 1, "ts": "01/02/2024 10:00", "d": "03/04/2024"}') > 0 AS queued;
RESET DateStyle;
SET TimeZone = 'UTC';
SELECT asyncwrite.flush();
SELECT ts, d FROM conv WHERE id = 1;

-- Numbers, booleans, arrays, json, enums, domains, bytea, large values.
SELECT asyncwrite.insert('conv', jsonb_build_object(
    'id', 2, 'num', 1234.567, 'f', 1e300, 'b', true,
    'tags', jsonb_build_array('a', 'b "quoted"', 'c,d', NULL),
    'matrix', '[[1, 2], [3, 4]]'::jsonb,
    'j', '{"k": [1, 2]}'::jsonb, 'jb', '{"k": {"n": null}}'::jsonb,
    'm', 'happy', 'p', 5, 'bytes', '\x00ff',
    'big', repeat('x', 100000))) > 0 AS queued;
SELECT asyncwrite.insert('conv', '{"id": 3, "num": "7", "b": "false", "jb": "a string", "j": 5}') > 0 AS queued;
SELECT asyncwrite.insert('conv', '{"id": 4, "tags": null, "jb": null}') > 0 AS queued;
SELECT asyncwrite.flush();
SELECT id, num, f, b, tags, matrix, j, jb, m, p, bytes, length(big) AS big_len
  FROM conv WHERE id BETWEEN 2 AND 4 ORDER BY id;
SELECT tags[2] AS second_tag, tags[4] IS NULL AS fourth_is_null FROM conv WHERE id = 2;

-- Domain and enum checks happen at call time.
SELECT try($$SELECT asyncwrite.insert('conv', '{"id": 5, "p": 0}')$$);
SELECT try($$SELECT asyncwrite.insert('conv', '{"id": 5, "m": "angry"}')$$);
SELECT try($$SELECT asyncwrite.insert('conv', '{"id": 5, "num": 123456}')$$);

-- A row of the table's own type is taken as is.
SELECT asyncwrite.insert('conv', ROW(6, ts, d, num, f, b, tags, matrix, j, jb, m, p, bytes, 'copied')::conv) > 0 AS queued
  FROM conv WHERE id = 2;
SELECT asyncwrite.flush();
SELECT id, num, tags, m, big FROM conv WHERE id = 6;

-- A composite of another type is matched by name and converted via text.
CREATE TYPE conv_in AS (id text, num text, d text);
SELECT asyncwrite.insert('conv', ROW('7', '8.5', '2024-05-06')::conv_in) > 0 AS queued;
SELECT asyncwrite.flush();
SELECT id, num, d FROM conv WHERE id = 7;

-- A trigger on a table of the same type can pass NEW.
CREATE TABLE conv_src (LIKE conv);
CREATE FUNCTION conv_copy() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM asyncwrite.insert('conv', NEW);
    RETURN NULL;
END $$;
CREATE TRIGGER conv_copy AFTER INSERT ON conv_src FOR EACH ROW EXECUTE FUNCTION conv_copy();
INSERT INTO conv_src (id, num, big) VALUES (8, 1.5, repeat('y', 50000));
SELECT asyncwrite.flush();
SELECT id, num, length(big) AS big_len FROM conv WHERE id = 8;
