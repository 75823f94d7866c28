-- asyncwrite 1.0 -> 1.1: asyncwrite.stats names the backend holding a
-- queue's head.
\echo Use "ALTER EXTENSION asyncwrite UPDATE TO '1.1'" to load this file. \quit

DROP VIEW @extschema@.stats;
DROP FUNCTION @extschema@.queue_stats();

CREATE FUNCTION @extschema@.queue_stats(
    OUT dboid oid,
    OUT worker_pid integer,
    OUT state text,
    OUT queued bigint,
    OUT queued_bytes bigint,
    OUT capacity_bytes bigint,
    OUT enqueued bigint,
    OUT applied bigint,
    OUT failed bigint,
    OUT batches bigint,
    OUT oldest_queued_at timestamptz,
    OUT last_applied_at timestamptz,
    OUT held_by_pid integer)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'aw_queue_stats'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE VIEW @extschema@.stats AS
SELECT d.datname AS database, s.*
  FROM @extschema@.queue_stats() s
  LEFT JOIN pg_catalog.pg_database d ON d.oid = s.dboid;

COMMENT ON VIEW @extschema@.stats IS
'one row per database queue: worker, state, queue depth and counters; held_by_pid: the backend whose committing transaction holds the oldest entry';

GRANT SELECT ON @extschema@.stats TO PUBLIC;
