/*-------------------------------------------------------------------------
 *
 * api_ddl.c
 *		A ProcessUtility hook that keeps the apply workers out of the way of
 *		DDL: DROP DATABASE, ALTER DATABASE ... RENAME / SET TABLESPACE and
 *		CREATE DATABASE ... TEMPLATE need the database to themselves, so its
 *		worker is stopped first and started again afterwards if writes are
 *		still queued.  DROP EXTENSION asyncwrite stops the worker too.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/objectaccess.h"
#include "catalog/pg_extension.h"
#include "commands/extension.h"
#include "catalog/partition.h"
#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "commands/dbcommands.h"
#include "commands/defrem.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/parsenodes.h"
#include "storage/ipc.h"
#include "tcop/utility.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "api.h"
#include "launcher.h"
#include "submit.h"
#include "wal.h"

/* How long DDL waits for a worker to leave its database. */
#define AW_STOP_TIMEOUT_MS	10000

static ProcessUtility_hook_type prev_ProcessUtility = NULL;
static object_access_hook_type prev_object_access_hook = NULL;
static bool aw_drop_callback_registered = false;
static bool aw_extension_dropped_here = false;	/* by this transaction */

/* The queue this backend holds for database DDL, for release at exit. */
static AwQueue *aw_ddl_held = NULL;
static bool aw_ddl_exit_registered = false;

static void aw_ddl_xact_callback(XactEvent event, void *arg);

/* The database a statement needs to itself, and whether it drops it. */
static Oid
aw_ddl_target_database(Node *parsetree, bool *dropping)
{
	const char *dbname = NULL;
	ListCell   *lc;

	*dropping = false;
	switch (nodeTag(parsetree))
	{
		case T_DropdbStmt:
			dbname = ((DropdbStmt *) parsetree)->dbname;
			*dropping = true;
			break;
		case T_RenameStmt:
			if (((RenameStmt *) parsetree)->renameType == OBJECT_DATABASE)
				dbname = ((RenameStmt *) parsetree)->subname;
			break;
		case T_CreatedbStmt:
			dbname = "template1";
			foreach(lc, ((CreatedbStmt *) parsetree)->options)
			{
				DefElem    *opt = lfirst_node(DefElem, lc);

				if (strcmp(opt->defname, "template") == 0 && opt->arg != NULL)
					dbname = defGetString(opt);
			}
			break;
		case T_AlterDatabaseStmt:
			foreach(lc, ((AlterDatabaseStmt *) parsetree)->options)
			{
				DefElem    *opt = lfirst_node(DefElem, lc);

				if (strcmp(opt->defname, "tablespace") == 0)
					dbname = ((AlterDatabaseStmt *) parsetree)->dbname;
			}
			break;
		default:
			break;
	}
	return dbname ? get_database_oid(dbname, true) : InvalidOid;
}

/* Add a table, its partitions or children and its ancestors to relids. */
static List *
aw_ddl_add_table(List *relids, RangeVar *rv)
{
	Oid			relid = RangeVarGetRelid(rv, NoLock, true);
	HeapTuple	tup;
	bool		temp;

	/* Looked up without a lock: the table may be gone already. */
	tup = OidIsValid(relid) ? SearchSysCache1(RELOID, ObjectIdGetDatum(relid)) : NULL;
	if (!HeapTupleIsValid(tup))
		return relids;
	temp = ((Form_pg_class) GETSTRUCT(tup))->relpersistence == RELPERSISTENCE_TEMP;
	ReleaseSysCache(tup);
	if (temp)
		return relids;
	relids = list_concat_unique_oid(relids, find_all_inheritors(relid, NoLock, NULL));
	if (get_rel_relispartition(relid))
		relids = list_concat_unique_oid(relids, get_partition_ancestors(relid));
	return relids;
}

/*
 * The tables a statement changes or removes that queued writes may target
 * (those writes were converted for their current columns), with their
 * partitions and ancestors; temporary tables never are.
 */
static List *
aw_ddl_changed_tables(Node *parsetree)
{
	List	   *relids = NIL;
	ListCell   *lc;

	switch (nodeTag(parsetree))
	{
		case T_AlterTableStmt:
			{
				AlterTableStmt *stmt = (AlterTableStmt *) parsetree;

				if (stmt->objtype == OBJECT_TABLE || stmt->objtype == OBJECT_FOREIGN_TABLE)
					relids = aw_ddl_add_table(relids, stmt->relation);
				break;
			}
		case T_RenameStmt:
			{
				RenameStmt *stmt = (RenameStmt *) parsetree;

				if (stmt->renameType == OBJECT_TABLE ||
					stmt->renameType == OBJECT_FOREIGN_TABLE ||
					stmt->renameType == OBJECT_COLUMN)
					relids = aw_ddl_add_table(relids, stmt->relation);
				break;
			}
		case T_DropStmt:
			{
				DropStmt   *stmt = (DropStmt *) parsetree;

				if (stmt->removeType != OBJECT_TABLE &&
					stmt->removeType != OBJECT_FOREIGN_TABLE)
					break;
				foreach(lc, stmt->objects)
					relids = aw_ddl_add_table(relids,
											  makeRangeVarFromNameList(lfirst(lc)));
				break;
			}
		case T_TruncateStmt:
			foreach(lc, ((TruncateStmt *) parsetree)->relations)
				relids = aw_ddl_add_table(relids, lfirst_node(RangeVar, lc));
			break;
		default:
			break;
	}
	return relids;
}

/*
 * Before DDL on tables with queued writes, let the database's queued
 * writes be applied with the columns they were converted for, waiting up
 * to ddl_flush_timeout.  Best effort: not while paused (they cannot be
 * applied), never from the worker itself, and a worker that waits for a
 * lock this transaction holds ends the wait as a timeout does.
 */
static void
aw_ddl_flush_first(List *relids)
{
	AwQueue    *q = aw_queue_lookup(MyDatabaseId);
	AwQueueState s;
	uint64		target;
	bool		blocked = false;

	/* This transaction's own kept writes go in before its DDL. */
	if (aw_xact_pending_count() > 0)
		aw_xact_write_now(false);

	if (q == NULL || aw_is_worker || aw_ddl_flush_timeout_ms <= 0)
		return;
	aw_queue_read_state(q, &s);
	if (s.paused || s.hold || s.dboid != MyDatabaseId)
		return;
	/* Writes still to be read back from the WAL: wait for all (target 0). */
	target = s.recovering ? 0 : s.last_write_id;
	if (!s.recovering &&
		(aw_queue_applied_write_id(q) >= target ||
		 !aw_queue_has_writes_for(q, relids)))
		return;
	if (!aw_wait_applied(q, target, aw_ddl_flush_timeout_ms, &blocked))
		ereport(WARNING,
				(errmsg("queued asyncwrite writes were not all applied before this DDL"),
				 blocked ?
				 errdetail("The asyncwrite worker waits for a lock this transaction holds.") :
				 errdetail("They were still not applied after asyncwrite.ddl_flush_timeout (%d ms).",
						   aw_ddl_flush_timeout_ms),
				 errhint("Writes to a table whose columns change before they are applied go to asyncwrite.dead_letters.")));
}

/*
 * After COMMIT PREPARED of a transaction that kept writes: have this
 * database's worker (started if need be) apply them, after the writes
 * queued before.  The transaction has committed: this never raises an
 * error, and with no queue free the writes wait in
 * asyncwrite.prepared_writes for the next worker of this database.
 */
static void
aw_ddl_notify_prepared(void)
{
	AwQueue    *q = aw_queue_lookup(MyDatabaseId);
	Latch	   *latch;

	if (q == NULL)
		q = aw_queue_bind(MyDatabaseId, NULL, true);
	if (q == NULL)
	{
		ereport(WARNING,
				(errmsg("no asyncwrite queue is free to apply the writes of the committed prepared transaction now"),
				 errdetail("They stay in asyncwrite.prepared_writes and are applied when a worker of this database next starts, at its next write.")));
		return;
	}
	latch = aw_queue_request_sweep(q);
	if (latch)
		SetLatch(latch);
	else
		aw_worker_ensure(q);
}

/* Clear a database's hold and restart its worker if writes wait. */
static void
aw_ddl_release(AwQueue *q, Oid dboid)
{
	bool		pending;

	(void) aw_queue_set_hold(q, dboid, false, &pending);
	if (pending)
		aw_worker_ensure(q);
}

/* Forget a dropped database's queue; its writes can no longer apply. */
static void
aw_ddl_forget(Oid dboid, AwQueue *q)
{
	uint64		lost = aw_queue_forget(q, dboid);

	if (lost > 0)
		ereport(WARNING,
				(errmsg("discarded " UINT64_FORMAT " queued asyncwrite writes of the dropped database", lost)));
}

/*
 * before_shmem_exit: a backend ended (FATAL) during database DDL releases
 * the hold on that database's queue; the worker it stopped is started again
 * by the postmaster.
 */
static void
aw_ddl_unhold_at_exit(int code, Datum arg)
{
	if (aw_ddl_held != NULL)
		aw_queue_release_hold(aw_ddl_held);
	aw_ddl_held = NULL;
}

/* ProcessUtility hook: stop workers around database DDL. */
static void
aw_process_utility(PlannedStmt *pstmt, const char *queryString,
				   bool readOnlyTree, ProcessUtilityContext context,
				   ParamListInfo params, QueryEnvironment *queryEnv,
				   DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *parsetree = pstmt->utilityStmt;
	bool		drops_database = false;
	Oid			target_db = InvalidOid;
	volatile bool dropping;
	volatile Oid dboid;
	volatile bool prepared_writes = false;
	AwQueue    *volatile q = NULL;

	if (aw_queue_loaded())
	{
		target_db = aw_ddl_target_database(parsetree, &drops_database);
		if (OidIsValid(target_db))
			q = aw_queue_lookup(target_db);
	}
	dropping = drops_database;
	dboid = target_db;
	if (aw_queue_loaded() && IsA(parsetree, TransactionStmt) &&
		((TransactionStmt *) parsetree)->kind == TRANS_STMT_COMMIT_PREPARED)
		prepared_writes = aw_prepared_kept_writes(((TransactionStmt *) parsetree)->gid);

	/* Table DDL, with writes kept by this transaction or queued here. */
	if (aw_queue_loaded() &&
		(aw_xact_pending_count() > 0 || aw_queue_lookup(MyDatabaseId) != NULL))
	{
		List	   *relids = aw_ddl_changed_tables(parsetree);

		if (relids != NIL)
			aw_ddl_flush_first(relids);
	}
	if (q != NULL)
	{
		bool		pending;

		if (!aw_queue_set_hold(q, target_db, true, &pending))
			q = NULL;			/* its queue was given to another database */
	}

	/* However this statement ends, with an error or FATAL, the hold goes. */
	if (q != NULL)
	{
		if (!aw_ddl_exit_registered)
		{
			before_shmem_exit(aw_ddl_unhold_at_exit, (Datum) 0);
			aw_ddl_exit_registered = true;
		}
		aw_ddl_held = q;
	}
	PG_TRY();
	{
		if (q != NULL)
			(void) aw_worker_stop(q, AW_STOP_TIMEOUT_MS);
		if (prev_ProcessUtility)
			prev_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);
		else
			standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
									params, queryEnv, dest, qc);
	}
	PG_CATCH();
	{
		aw_ddl_held = NULL;
		if (q != NULL)
			aw_ddl_release(q, dboid);
		PG_RE_THROW();
	}
	PG_END_TRY();
	aw_ddl_held = NULL;

	if (q != NULL)
	{
		if (dropping)
			aw_ddl_forget(dboid, q);
		else
			aw_ddl_release(q, dboid);
	}

	/* A dropped database's durable writes need no WAL any more. */
	if (dropping)
		(void) aw_wal_drop_slot(dboid);

	/* After COMMIT PREPARED, the worker applies the writes it released. */
	if (prepared_writes)
		aw_ddl_notify_prepared();

	/*
	 * DISCARD ALL (a pooler's server_reset_query) makes the session as new:
	 * the next client must not see this one's write ids.
	 */
	if (IsA(parsetree, DiscardStmt) &&
		((DiscardStmt *) parsetree)->target == DISCARD_ALL)
		aw_xact_forget_session();
}

/*
 * At the end of a transaction that dropped the extension (by DROP
 * EXTENSION, DROP SCHEMA ... CASCADE, DROP OWNED or otherwise): if it
 * committed, only nudge this database's worker.  The worker decides, at the
 * start of its next batch and under a lock on the extension, whether the
 * extension is gone; a drop rolled back (to a savepoint, say) discards
 * nothing.  A running worker is terminated, so that the one started after
 * it looks at once, even with nothing queued; with none, one is started if
 * writes are queued.  A prepared drop only clears the note.  Never raises
 * an error.
 */
static void
aw_ddl_xact_callback(XactEvent event, void *arg)
{
	AwQueue    *q;
	bool		dropped = aw_extension_dropped_here;

	if (event != XACT_EVENT_COMMIT && event != XACT_EVENT_ABORT &&
		event != XACT_EVENT_PARALLEL_COMMIT &&
		event != XACT_EVENT_PARALLEL_ABORT && event != XACT_EVENT_PREPARE)
		return;
	aw_extension_dropped_here = false;
	if (!dropped || event != XACT_EVENT_COMMIT)
		return;

	/*
	 * The durable writes of the dropped extension can no longer be applied:
	 * their replication slot goes, so that no WAL is kept for nothing.  Only
	 * once the drop has committed: a transaction can still fail after its
	 * pre-commit callbacks (a serialization failure), and the extension then
	 * stays with writes that need the slot.
	 */
	aw_wal_try_drop_slot(MyDatabaseId);
	if ((q = aw_queue_lookup(MyDatabaseId)) == NULL)
		return;
	if (aw_queue_terminate_worker(q))
	{
		AwQueueState s;

		aw_queue_read_state(q, &s);
		if (s.head != s.tail)
			aw_worker_ensure(q);
	}
}

/*
 * object_access_hook: note when this transaction drops the asyncwrite
 * extension, whatever statement drops it.
 */
static void
aw_object_access(ObjectAccessType access, Oid classId, Oid objectId,
				 int subId, void *arg)
{
	if (prev_object_access_hook)
		prev_object_access_hook(access, classId, objectId, subId, arg);
	if (access == OAT_DROP && classId == ExtensionRelationId &&
		aw_queue_loaded() && objectId == get_extension_oid("asyncwrite", true))
	{
		/* Registered once: a callback may not unregister itself. */
		if (!aw_drop_callback_registered)
			RegisterXactCallback(aw_ddl_xact_callback, NULL);
		aw_drop_callback_registered = true;
		aw_extension_dropped_here = true;
	}
}

/* Install the ProcessUtility and object access hooks, chained. */
void
aw_ddl_install_hook(void)
{
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = aw_process_utility;
	prev_object_access_hook = object_access_hook;
	object_access_hook = aw_object_access;
}
