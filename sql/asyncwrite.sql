-- asyncwrite: deferred writes through a shared-memory queue.  The install
-- script of the current version (the Makefile copies it to
-- asyncwrite--$(EXTVERSION).sql); an earlier version's database gets the same
-- objects from the upgrade scripts (TAP test 016 compares the two).

\echo Use "CREATE EXTENSION asyncwrite" to load this file. \quit

-- The write functions.  JSON arguments are taken as jsonb, json or text
-- (so a varchar, or a driver's parameter of no type, works as well), each
-- overload with the same C function; urgent asks the worker to apply the
-- write at once, without waiting for asyncwrite.flush_interval.
CREATE FUNCTION @extschema@.insert(target regclass, data jsonb,
                                   transactional boolean DEFAULT NULL,
                                   urgent boolean DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'aw_insert_jsonb'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION @extschema@.insert(regclass, jsonb, boolean, boolean) IS
'queue an insert of a row given as a JSON object, or of many given as an array of objects; returns the (last) write id, or NULL when queued at commit';

CREATE FUNCTION @extschema@.insert(target regclass, data json,
                                   transactional boolean DEFAULT NULL,
                                   urgent boolean DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'aw_insert_jsonb'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION @extschema@.insert(regclass, json, boolean, boolean) IS
'queue an insert of a row given as a JSON object, or of many given as an array of objects; returns the (last) write id, or NULL when queued at commit';

CREATE FUNCTION @extschema@.insert(target regclass, data text,
                                   transactional boolean DEFAULT NULL,
                                   urgent boolean DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'aw_insert_jsonb'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION @extschema@.insert(regclass, text, boolean, boolean) IS
'queue an insert of a row given as a JSON object, or of many given as an array of objects; returns the (last) write id, or NULL when queued at commit';

CREATE FUNCTION @extschema@.insert(target regclass, rec anyelement,
                                   transactional boolean DEFAULT NULL,
                                   urgent boolean DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'aw_insert_record'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION @extschema@.insert(regclass, anyelement, boolean, boolean) IS
'queue an insert of a row given as a composite value, or of many given as an array of them; returns the (last) write id, or NULL when queued at commit';

CREATE FUNCTION @extschema@.upsert(target regclass, data jsonb,
                                   conflict_columns text[] DEFAULT NULL,
                                   transactional boolean DEFAULT NULL,
                                   urgent boolean DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'aw_upsert'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION @extschema@.upsert(regclass, jsonb, text[], boolean, boolean) IS
'queue INSERT ... ON CONFLICT (conflict_columns, the primary key by default) DO UPDATE of the other given columns';

CREATE FUNCTION @extschema@.upsert(target regclass, data json,
                                   conflict_columns text[] DEFAULT NULL,
                                   transactional boolean DEFAULT NULL,
                                   urgent boolean DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'aw_upsert'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION @extschema@.upsert(regclass, json, text[], boolean, boolean) IS
'queue INSERT ... ON CONFLICT (conflict_columns, the primary key by default) DO UPDATE of the other given columns';

CREATE FUNCTION @extschema@.upsert(target regclass, data text,
                                   conflict_columns text[] DEFAULT NULL,
                                   transactional boolean DEFAULT NULL,
                                   urgent boolean DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'aw_upsert'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION @extschema@.upsert(regclass, text, text[], boolean, boolean) IS
'queue INSERT ... ON CONFLICT (conflict_columns, the primary key by default) DO UPDATE of the other given columns';

CREATE FUNCTION @extschema@.update(target regclass, key jsonb, data jsonb,
                                   transactional boolean DEFAULT NULL,
                                   urgent boolean DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'aw_update'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION @extschema@.update(regclass, jsonb, jsonb, boolean, boolean) IS
'queue an UPDATE of the row whose unique key is key, setting the columns of data';

CREATE FUNCTION @extschema@.update(target regclass, key json, data json,
                                   transactional boolean DEFAULT NULL,
                                   urgent boolean DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'aw_update'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION @extschema@.update(regclass, json, json, boolean, boolean) IS
'queue an UPDATE of the row whose unique key is key, setting the columns of data';

CREATE FUNCTION @extschema@.update(target regclass, key text, data text,
                                   transactional boolean DEFAULT NULL,
                                   urgent boolean DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'aw_update'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION @extschema@.update(regclass, text, text, boolean, boolean) IS
'queue an UPDATE of the row whose unique key is key, setting the columns of data';

CREATE FUNCTION @extschema@.delete(target regclass, key jsonb,
                                   transactional boolean DEFAULT NULL,
                                   urgent boolean DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'aw_delete'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION @extschema@.delete(regclass, jsonb, boolean, boolean) IS
'queue a DELETE of the row whose unique key is key';

CREATE FUNCTION @extschema@.delete(target regclass, key json,
                                   transactional boolean DEFAULT NULL,
                                   urgent boolean DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'aw_delete'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION @extschema@.delete(regclass, json, boolean, boolean) IS
'queue a DELETE of the row whose unique key is key';

CREATE FUNCTION @extschema@.delete(target regclass, key text,
                                   transactional boolean DEFAULT NULL,
                                   urgent boolean DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'aw_delete'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION @extschema@.delete(regclass, text, boolean, boolean) IS
'queue a DELETE of the row whose unique key is key';

CREATE FUNCTION @extschema@.increment(target regclass, key jsonb, deltas jsonb,
                                      transactional boolean DEFAULT NULL,
                                      urgent boolean DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'aw_increment'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION @extschema@.increment(regclass, jsonb, jsonb, boolean, boolean) IS
'queue adding deltas to numeric columns of the row whose unique key is key, inserting it when missing';

CREATE FUNCTION @extschema@.increment(target regclass, key json, deltas json,
                                      transactional boolean DEFAULT NULL,
                                      urgent boolean DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'aw_increment'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION @extschema@.increment(regclass, json, json, boolean, boolean) IS
'queue adding deltas to numeric columns of the row whose unique key is key, inserting it when missing';

CREATE FUNCTION @extschema@.increment(target regclass, key text, deltas text,
                                      transactional boolean DEFAULT NULL,
                                      urgent boolean DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'aw_increment'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION @extschema@.increment(regclass, text, text, boolean, boolean) IS
'queue adding deltas to numeric columns of the row whose unique key is key, inserting it when missing';

CREATE FUNCTION @extschema@.flush(timeout interval DEFAULT NULL)
RETURNS boolean
AS 'MODULE_PATHNAME', 'aw_flush'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION @extschema@.flush(interval) IS
'wait until every write queued in this database before the call is applied; false on timeout';

CREATE FUNCTION @extschema@.wait(write_id bigint, timeout interval DEFAULT NULL)
RETURNS boolean
AS 'MODULE_PATHNAME', 'aw_wait'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION @extschema@.wait(bigint, interval) IS
'wait until one write is applied or recorded as failed; false on timeout';

CREATE FUNCTION @extschema@.pause()
RETURNS void
AS 'MODULE_PATHNAME', 'aw_pause'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION @extschema@.resume()
RETURNS void
AS 'MODULE_PATHNAME', 'aw_resume'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION @extschema@.pause() IS
'stop applying queued writes in this database; writes are still queued';
COMMENT ON FUNCTION @extschema@.resume() IS
'apply queued writes in this database again';

REVOKE ALL ON FUNCTION @extschema@.pause() FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.resume() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.pause() TO PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.resume() TO PUBLIC;

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
    OUT held_by_pid integer,
    OUT wal_slot text,
    OUT wal_replay_lsn pg_lsn,
    OUT wal_retained_bytes bigint,
    OUT recovered_writes bigint,
    OUT lost_writes bigint,
    OUT lost_write_ids int8multirange)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'aw_queue_stats'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE VIEW @extschema@.stats AS
SELECT d.datname AS database, s.*
  FROM @extschema@.queue_stats() s
  LEFT JOIN pg_catalog.pg_database d ON d.oid = s.dboid;

COMMENT ON VIEW @extschema@.stats IS
'one row per database queue: worker, state, queue depth and counters; held_by_pid: the backend whose committing transaction holds the oldest entry; wal_*: the replication slot keeping the WAL of durable writes, the position it keeps and how many bytes that is; recovered_writes: durable writes read back from the WAL at the last start; lost_writes, lost_write_ids: durable writes not applied whose WAL was gone when they were to be read back (at most that many: an id in a range may have been rolled back), since the queue was bound to the database';

GRANT USAGE ON SCHEMA @extschema@ TO PUBLIC;
GRANT SELECT ON @extschema@.stats TO PUBLIC;

-- Writes the worker could not apply.  Written by the worker only.  The
-- rows and their id sequence are dumped with the extension's data; role and
-- target are regrole and regclass, so that a restore brings them back by
-- name.
CREATE SEQUENCE @extschema@.dead_letters_id_seq;
CREATE TABLE @extschema@.dead_letters (
    id          bigint NOT NULL DEFAULT pg_catalog.nextval('@extschema@.dead_letters_id_seq') PRIMARY KEY,
    write_id    bigint NOT NULL,
    target_name text,
    target      pg_catalog.regclass NOT NULL,
    operation   text NOT NULL,
    payload     jsonb,
    role        pg_catalog.regrole NOT NULL,
    enqueued_at timestamptz NOT NULL,
    failed_at   timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    attempts    integer NOT NULL,
    sqlstate    text NOT NULL,
    message     text NOT NULL,
    detail      text,
    key_columns text[],
    set_columns text[]
);
ALTER SEQUENCE @extschema@.dead_letters_id_seq OWNED BY @extschema@.dead_letters.id;
SELECT pg_catalog.pg_extension_config_dump('@extschema@.dead_letters', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.dead_letters_id_seq', '');

COMMENT ON TABLE @extschema@.dead_letters IS
'queued writes that failed to apply, with the error';

-- A role sees and may delete its own dead letters; superusers and members
-- of pg_read_all_data see every one.  Payloads (rows of tables a reader
-- may not read) are visible to no one else: pg_monitor reads
-- dead_letters_overview, every dead letter without its payload and detail.
ALTER TABLE @extschema@.dead_letters ENABLE ROW LEVEL SECURITY;
CREATE POLICY dead_letters_own ON @extschema@.dead_letters FOR SELECT
    USING (role OPERATOR(pg_catalog.=) (SELECT r.oid FROM pg_catalog.pg_roles r
                                         WHERE r.rolname OPERATOR(pg_catalog.=) current_user));
CREATE POLICY dead_letters_read_all ON @extschema@.dead_letters FOR SELECT
    USING (pg_catalog.pg_has_role(current_user, 'pg_read_all_data', 'USAGE'));
CREATE POLICY dead_letters_delete_own ON @extschema@.dead_letters FOR DELETE
    USING (role OPERATOR(pg_catalog.=) (SELECT r.oid FROM pg_catalog.pg_roles r
                                         WHERE r.rolname OPERATOR(pg_catalog.=) current_user));
GRANT SELECT, DELETE ON @extschema@.dead_letters TO PUBLIC;

CREATE VIEW @extschema@.dead_letters_overview AS
SELECT id, write_id, target_name, target, operation, role, enqueued_at,
       failed_at, attempts, sqlstate, message, key_columns, set_columns
  FROM @extschema@.dead_letters;

COMMENT ON VIEW @extschema@.dead_letters_overview IS
'every dead letter without its payload or error detail, for monitoring (granted to pg_monitor)';

REVOKE ALL ON @extschema@.dead_letters_overview FROM PUBLIC;
GRANT SELECT ON @extschema@.dead_letters_overview TO pg_monitor;

CREATE FUNCTION @extschema@.retry_failed(id bigint DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'aw_retry_failed'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION @extschema@.retry_failed(bigint) IS
'queue a dead letter, or all of yours, again; each is removed once its retry is applied';

-- Dead letters by write id, for asyncwrite.status().
CREATE INDEX dead_letters_write_id_idx ON @extschema@.dead_letters (write_id);

CREATE FUNCTION @extschema@.status(write_id bigint, OUT state text,
                                   OUT dead_letter_id bigint)
RETURNS record
AS 'MODULE_PATHNAME', 'aw_status'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION @extschema@.status(bigint) IS
'what became of a write of this database: queued, applied, failed (with its dead letter id) or unknown';

CREATE FUNCTION @extschema@.last_write_id()
RETURNS bigint
AS 'MODULE_PATHNAME', 'aw_last_write_id_fn'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION @extschema@.last_write_id() IS
'the highest write id this session submitted (transactional writes get theirs at commit)';

CREATE FUNCTION @extschema@.capture()
RETURNS trigger
AS 'MODULE_PATHNAME', 'aw_capture'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION @extschema@.capture() IS
'row trigger: queue NEW (OLD on DELETE) into the table named by its first argument, TG_OP into the column named by the second';

-- Writes kept by a transaction that was prepared (two-phase commit): they
-- are rows of the prepared transaction itself, so they become visible at
-- COMMIT PREPARED and vanish at ROLLBACK PREPARED.  After a COMMIT PREPARED
-- the worker applies the visible ones in one transaction with their
-- deletion, so each is applied exactly once.
CREATE TABLE @extschema@.prepared_writes (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    relid       oid NOT NULL,
    roleid      oid NOT NULL,
    fingerprint bigint NOT NULL,
    kind        smallint NOT NULL,
    flags       integer NOT NULL,
    payload     bytea NOT NULL,
    extra       bytea
);
REVOKE ALL ON @extschema@.prepared_writes FROM PUBLIC;

-- The applied mark of durable writes (asyncwrite.durable): a row per
-- cluster and database, updated by the worker in every transaction that
-- applies writes or records them as failed, so that rows and mark commit
-- together.  After a restart the worker reads its writes back from the WAL,
-- from its replication slot's position but never before replay_from_lsn
-- (the position of CREATE EXTENSION at first), and queues again those above
-- applied_write_id: none is applied twice.  The row of another cluster or
-- database (a copy by CREATE DATABASE ... TEMPLATE, or by logical
-- replication) is not this one's mark.  Not dumped: a restored database
-- starts afresh.
CREATE TABLE @extschema@.applied_mark (
    system_identifier bigint NOT NULL,
    database          oid NOT NULL,
    applied_write_id  bigint NOT NULL DEFAULT 0,
    replay_from_lsn   pg_lsn NOT NULL DEFAULT pg_catalog.pg_current_wal_insert_lsn(),
    PRIMARY KEY (system_identifier, database)
);
INSERT INTO @extschema@.applied_mark (system_identifier, database)
SELECT s.system_identifier, d.oid
  FROM pg_catalog.pg_control_system() s, pg_catalog.pg_database d
 WHERE d.datname = pg_catalog.current_database();
REVOKE ALL ON @extschema@.applied_mark FROM PUBLIC;
GRANT SELECT ON @extschema@.applied_mark TO pg_monitor;
