-- Bad input: a clear error with a SQLSTATE at call time, and nothing queued.
\set VERBOSITY default
\set SHOW_CONTEXT never
-- Writes are queued at the call here (ids at once, applied even on
-- rollback); transactional submission is tested in transactional.sql.
SET asyncwrite.transactional = off;

CREATE TABLE err_t (
    id    int PRIMARY KEY,
    n     int,
    small smallint,
    d     date,
    g     int GENERATED ALWAYS AS (n * 2) STORED,
    ident int GENERATED ALWAYS AS IDENTITY
);
CREATE VIEW err_v AS SELECT * FROM err_t;
CREATE MATERIALIZED VIEW err_mv AS SELECT 1 AS a;
CREATE SEQUENCE err_seq;
CREATE INDEX err_idx ON err_t (n);
CREATE TEMP TABLE err_temp (a int);
CREATE TYPE err_pair AS (id text, n int);

\i test/sql/include/try.sql

SELECT coalesce(sum(enqueued), 0) AS enqueued_before FROM asyncwrite.stats \gset

SELECT stmt, try(stmt) FROM (VALUES
    ($$SELECT asyncwrite.insert(NULL, '{"id": 1}'::jsonb)$$),
    ($$SELECT asyncwrite.insert('err_t', NULL::jsonb)$$),
    ($$SELECT asyncwrite.insert('err_t', NULL::err_t)$$),
    ($$SELECT asyncwrite.insert('no_such_table', '{"id": 1}')$$),
    ($$SELECT asyncwrite.insert(999999::oid::regclass, '{"id": 1}')$$),
    ($$SELECT asyncwrite.insert('err_v', '{"id": 1}')$$),
    ($$SELECT asyncwrite.insert('err_mv', '{"a": 1}')$$),
    ($$SELECT asyncwrite.insert('err_seq', '{"id": 1}')$$),
    ($$SELECT asyncwrite.insert('err_idx', '{"id": 1}')$$),
    ($$SELECT asyncwrite.insert('err_temp', '{"a": 1}')$$),
    ($$SELECT asyncwrite.insert('pg_class', '{"relname": "x"}')$$),
    ($$SELECT asyncwrite.insert('err_t', '{"id": 1, "nope": 2}')$$),
    ($$SELECT asyncwrite.insert('err_t', '{"id": "one"}')$$),
    ($$SELECT asyncwrite.insert('err_t', '{"id": 1.5}')$$),
    ($$SELECT asyncwrite.insert('err_t', '{"id": 1, "small": 70000}')$$),
    ($$SELECT asyncwrite.insert('err_t', '{"id": 99999999999}')$$),
    ($$SELECT asyncwrite.insert('err_t', '{"id": 1, "d": "2024-02-30"}')$$),
    ($$SELECT asyncwrite.insert('err_t', '{"id": 1, "n": [1, 2]}')$$),
    ($$SELECT asyncwrite.insert('err_t', '[1, 2]'::jsonb)$$),
    ($$SELECT asyncwrite.insert('err_t', '42'::jsonb)$$),
    ($$SELECT asyncwrite.insert('err_t', 'not json')$$),
    ($$SELECT asyncwrite.insert('err_t', '{"id": 1, "g": 4}')$$),
    ($$SELECT asyncwrite.insert('err_t', '{"id": 1, "ident": 4}')$$),
    ($$SELECT asyncwrite.insert('err_t', ROW('one', 2)::err_pair)$$),
    ($$SELECT asyncwrite.insert('err_t', 42)$$),
    ($$SELECT asyncwrite.insert('err_t', 'x'::text::varchar)$$)
) AS cases(stmt);

-- A read-only transaction cannot queue writes.
BEGIN READ ONLY;
SELECT try($$SELECT asyncwrite.insert('err_t', '{"id": 1}')$$);
COMMIT;

-- Privileges are checked at call time for the calling role.
CREATE ROLE aw_err_user;
SET ROLE aw_err_user;
SELECT try($$SELECT asyncwrite.insert('err_t', '{"id": 1}')$$);
RESET ROLE;
CREATE SCHEMA aw_hidden;
CREATE TABLE aw_hidden.t (a int);
GRANT INSERT ON aw_hidden.t TO aw_err_user;
SELECT 'aw_hidden.t'::regclass::oid AS hidden_oid \gset
SET ROLE aw_err_user;
SELECT try(format('SELECT asyncwrite.insert(%s, %L)', :hidden_oid, '{"a": 1}'));
RESET ROLE;

-- None of the above queued anything, and the table is empty.
SELECT coalesce(sum(enqueued), 0) - :enqueued_before AS enqueued_by_bad_calls
  FROM asyncwrite.stats;
SELECT asyncwrite.flush();
SELECT count(*) FROM err_t;

-- A valid call after all that still works.
SELECT asyncwrite.insert('err_t', '{"id": 1, "n": 21}') IS NOT NULL AS queued;
SELECT asyncwrite.flush();
SELECT id, n, g, ident FROM err_t;
