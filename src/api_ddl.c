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
#include "commands/dbcommands.h"
#include "commands/defrem.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "tcop/utility.h"

#include "api.h"
#include "launcher.h"
#include "submit.h"

/* How long DDL waits for a worker to leave its database. */
#define AW_STOP_TIMEOUT_MS	10000

static ProcessUtility_hook_type prev_ProcessUtility = NULL;
static bool aw_drop_callback_registered = false;

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

/* Whether the statement is DROP EXTENSION naming asyncwrite. */
static bool
aw_ddl_drops_extension(Node *parsetree)
{
	DropStmt   *stmt;
	ListCell   *lc;

	if (!IsA(parsetree, DropStmt))
		return false;
	stmt = (DropStmt *) parsetree;
	if (stmt->removeType != OBJECT_EXTENSION)
		return false;
	foreach(lc, stmt->objects)
	{
		if (strcmp(strVal(lfirst(lc)), "asyncwrite") == 0)
			return true;
	}
	return false;
}

/*
 * Whether the statement changes or removes a table that queued writes may
 * target: those writes were converted for its current columns.
 */
static bool
aw_ddl_changes_table(Node *parsetree)
{
	switch (nodeTag(parsetree))
	{
		case T_AlterTableStmt:
			return ((AlterTableStmt *) parsetree)->objtype == OBJECT_TABLE ||
				((AlterTableStmt *) parsetree)->objtype == OBJECT_FOREIGN_TABLE;
		case T_RenameStmt:
			return ((RenameStmt *) parsetree)->renameType == OBJECT_TABLE ||
				((RenameStmt *) parsetree)->renameType == OBJECT_FOREIGN_TABLE ||
				((RenameStmt *) parsetree)->renameType == OBJECT_COLUMN;
		case T_DropStmt:
			return ((DropStmt *) parsetree)->removeType == OBJECT_TABLE ||
				((DropStmt *) parsetree)->removeType == OBJECT_FOREIGN_TABLE;
		case T_TruncateStmt:
			return true;
		default:
			return false;
	}
}

/*
 * Before table DDL, let the database's queued writes be applied with the
 * columns they were converted for, waiting up to ddl_flush_timeout.  Not
 * while paused (they cannot be applied), and never from the worker itself.
 */
static void
aw_ddl_flush_first(void)
{
	AwQueue    *q = aw_queue_lookup(MyDatabaseId);
	AwQueueState s;

	/* This transaction's own kept writes go in before its DDL. */
	if (aw_xact_pending_count() > 0)
		aw_xact_write_now(false);

	if (q == NULL || aw_is_worker || aw_ddl_flush_timeout_ms <= 0)
		return;
	aw_queue_read_state(q, &s);
	if (s.paused || s.hold || s.dboid != MyDatabaseId ||
		aw_queue_applied_write_id(q) >= s.last_write_id)
		return;
	if (!aw_wait_applied(q, s.last_write_id, aw_ddl_flush_timeout_ms))
		ereport(WARNING,
				(errmsg("queued asyncwrite writes were not all applied before this DDL"),
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

	if (aw_queue_loaded() && aw_ddl_changes_table(parsetree))
		aw_ddl_flush_first();
	if (q != NULL)
	{
		bool		pending;

		if (aw_queue_set_hold(q, target_db, true, &pending))
			(void) aw_worker_stop(q, AW_STOP_TIMEOUT_MS);
		else
			q = NULL;			/* its queue was given to another database */
	}

	PG_TRY();
	{
		if (prev_ProcessUtility)
			prev_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);
		else
			standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
									params, queryEnv, dest, qc);
	}
	PG_CATCH();
	{
		if (q != NULL)
			aw_ddl_release(q, dboid);
		PG_RE_THROW();
	}
	PG_END_TRY();

	if (q != NULL)
	{
		if (dropping)
			aw_ddl_forget(dboid, q);
		else
			aw_ddl_release(q, dboid);
	}

	/* After COMMIT PREPARED, the worker applies the writes it released. */
	if (prepared_writes)
		aw_ddl_notify_prepared();

	/* Act on DROP EXTENSION once it is known to have committed. */
	if (aw_queue_loaded() && aw_ddl_drops_extension(parsetree) &&
		!aw_drop_callback_registered)
	{
		RegisterXactCallback(aw_ddl_xact_callback, NULL);
		aw_drop_callback_registered = true;
	}
}

/*
 * At commit of a transaction that dropped the extension, tell this
 * database's worker to discard the queue and exit.  Never raises an error.
 */
static void
aw_ddl_xact_callback(XactEvent event, void *arg)
{
	if (event != XACT_EVENT_COMMIT && event != XACT_EVENT_ABORT &&
		event != XACT_EVENT_PARALLEL_COMMIT && event != XACT_EVENT_PARALLEL_ABORT)
		return;
	UnregisterXactCallback(aw_ddl_xact_callback, NULL);
	aw_drop_callback_registered = false;
	if (event != XACT_EVENT_COMMIT)
		return;

	for (int i = 0; i < aw_queue_count(); i++)
	{
		uint64		discarded = aw_queue_drop_extension(aw_queue_at(i),
														MyDatabaseId);

		if (discarded > 0)
			ereport(WARNING,
					(errmsg("discarded " UINT64_FORMAT " queued asyncwrite writes", discarded),
					 errdetail("The asyncwrite extension was dropped from this database.")));
	}
}

/* Install the ProcessUtility hook, chained to the previous one. */
void
aw_ddl_install_hook(void)
{
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = aw_process_utility;
}
