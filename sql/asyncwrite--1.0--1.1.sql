-- asyncwrite 1.0 -> 1.1: asyncwrite.stats names the backend holding a
-- queue's head and the WAL kept for durable writes; the applied mark of
-- durable writes.
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

GRANT SELECT ON @extschema@.stats TO PUBLIC;

-- Dead letters survive pg_dump and restore, and their owners manage them.
--
-- The rows and their id sequence are dumped with the extension's data
-- (pg_extension_config_dump); the id becomes a plain sequence default, as
-- pg_cron's job ids, since an identity column's sequence cannot be marked.
-- role and target become regrole and regclass, so that a restore brings
-- them back by name, not by a meaningless OID.
-- The new sequence goes on from where the identity's stood (never lower:
-- a retry still queued names its dead letter by id, which must not be
-- given to another); it takes the identity sequence's name once that is
-- dropped.
DO $$
DECLARE
    last_id bigint;
BEGIN
    EXECUTE pg_catalog.format(
        'SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM %s',
        pg_catalog.pg_get_serial_sequence('@extschema@.dead_letters', 'id'))
      INTO last_id;
    SELECT pg_catalog.max(v) INTO last_id
      FROM (SELECT last_id AS v
            UNION ALL SELECT pg_catalog.max(id) FROM @extschema@.dead_letters) s;
    ALTER TABLE @extschema@.dead_letters ALTER COLUMN id DROP IDENTITY;
    CREATE SEQUENCE @extschema@.dead_letters_id_seq
        OWNED BY @extschema@.dead_letters.id;
    IF last_id > 0 THEN
        PERFORM pg_catalog.setval('@extschema@.dead_letters_id_seq', last_id, true);
    END IF;
END $$;
ALTER TABLE @extschema@.dead_letters
    ALTER COLUMN id SET DEFAULT pg_catalog.nextval('@extschema@.dead_letters_id_seq');
DROP POLICY dead_letters_visible ON @extschema@.dead_letters;
ALTER TABLE @extschema@.dead_letters
    ALTER COLUMN target TYPE pg_catalog.regclass,
    ALTER COLUMN role TYPE pg_catalog.regrole;
SELECT pg_catalog.pg_extension_config_dump('@extschema@.dead_letters', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.dead_letters_id_seq', '');

-- A role sees and may delete its own dead letters; superusers and members
-- of pg_read_all_data see every one.  Payloads (rows of tables a reader
-- may not read) are visible to no one else: pg_monitor reads
-- dead_letters_overview, every dead letter without its payload and detail.
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

-- The write functions take JSON as jsonb, json or text, and an urgent
-- argument: each is created again (a new argument with a default would make
-- a call of the old one ambiguous).
DROP FUNCTION @extschema@.insert(regclass, jsonb, boolean);
DROP FUNCTION @extschema@.insert(regclass, text, boolean);
DROP FUNCTION @extschema@.insert(regclass, anyelement, boolean);
DROP FUNCTION @extschema@.upsert(regclass, jsonb, text[], boolean);
DROP FUNCTION @extschema@.update(regclass, jsonb, jsonb, boolean);
DROP FUNCTION @extschema@.delete(regclass, jsonb, boolean);
DROP FUNCTION @extschema@.increment(regclass, jsonb, jsonb, boolean);

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

-- Dead letters by write id, for asyncwrite.status().
CREATE INDEX dead_letters_write_id_idx ON @extschema@.dead_letters (write_id);

CREATE FUNCTION @extschema@.status(write_id bigint, OUT state text,
                                   OUT dead_letter_id bigint)
RETURNS record
AS 'MODULE_PATHNAME', 'aw_status'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION @extschema@.status(bigint) IS
'what became of a write of this database: queued, applied, failed (with its dead letter id) or unknown';
