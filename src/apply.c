/*-------------------------------------------------------------------------
 *
 * apply.c
 *		Apply a batch of queued writes in one transaction.  The batch is cut
 *		into runs of consecutive writes of the same kind, target, role and
 *		columns; each run is applied in a subtransaction, inserts the way
 *		COPY does (apply_bulk.c) where that does what an INSERT would, else
 *		as one set-based statement (apply_plan.c).  A failing run is split
 *		in halves down to single writes, so that only the bad writes fail;
 *		a transient error is retried, and what still fails is recorded in
 *		asyncwrite.dead_letters (apply_deadletter.c).
 *
 * Each run executes as the role that queued it (SetUserIdAndSecContext),
 * so privileges, row-level security, triggers and column defaults behave as
 * for that role's own statement.  The worker's own role is never used for
 * a target.  The same path writes a row synchronously in a caller's
 * transaction (aw_apply_now).
 *
 * A connection failure (a foreign table's server, through postgres_fdw, or
 * dblink in a trigger) is transient, but is never tried again inside the
 * transaction that met it: postgres_fdw refuses to use a connection that
 * broke inside a transaction until that transaction ends, and the remote
 * part of what the transaction already wrote through it is gone with it.
 * The transaction is rolled back instead and the whole batch (or write)
 * tried again in a new one; each transaction's try number (conn_try)
 * says whether tries are left.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "catalog/pg_extension.h"
#include "commands/extension.h"
#include "storage/lmgr.h"
#include "utils/syscache.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/array.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "apply.h"
#include "launcher.h"

static void aw_execute_plan(AwPlan *p, Relation rel, AwEntryHeader *first,
							Datum *elems, int n);
static void aw_coalesce_rows(Relation rel, AwApplyRow *rows, int n, bool *keep,
							 Datum *elems);
static int	aw_apply_refusal(void);

/* Outcomes of aw_apply_alone() besides a refusal (AW_BATCH_*). */
#define AW_ALONE_DONE	1		/* applied or recorded: release it */
#define AW_ALONE_STUCK	0		/* neither applied nor recorded */

/*
 * Apply rows[0..n) (same target, role, kind, columns and layout).  Inserts
 * in the worker take COPY's bulk path where it does what an INSERT would
 * (apply_bulk.c); everything else runs one statement (apply_plan.c).  A
 * retry of a dead letter (always alone in its run) first removes the dead
 * letter, in the same subtransaction: if it is already gone, an earlier
 * retry of it was applied and this one is skipped.
 */
static void
aw_insert_rows(AwApplyRow *rows, int n)
{
	AwEntryHeader *first = rows[0].hdr;
	AwPlan	   *p;
	Relation	rel;
	bool	   *keep;
	bool		one_by_one = false;
	int			nelems = 0;
	Datum	   *elems;

	if (first->flags & AW_FLAG_RETRY)
	{
		Assert(n == 1);
		if (!aw_dead_letter_remove(AW_ENTRY_RETRY_ID(first)))
			return;
	}

	/* The run's rows fit the table's columns: let them be read so. */
	rel = aw_plan_open_target(first);
	for (int i = 0; i < n; i++)
		aw_row_unversion((HeapTupleHeader) AW_ENTRY_PAYLOAD(rows[i].hdr));
	if (aw_is_worker && first->kind != AW_KIND_DELETE &&
		aw_target_has_domains(aw_target_get(rel)))
	{
		/*
		 * Domain constraints as they are now, as an INSERT now checks them,
		 * their expressions run as the role that queued the writes.
		 */
		AwTarget   *t = aw_target_get(rel);
		AwColumnSets *cs = aw_entry_colsets(first);
		const AttrNumber *attnums = NULL;
		int			nattnums = 0;
		AwWriterState ws;

		/* An update sets only its set columns; a row of given columns, those. */
		if (first->kind == AW_KIND_UPDATE)
		{
			attnums = cs->attnums + cs->nkeys;
			nattnums = cs->nset;
		}
		else if (first->flags & AW_FLAG_GIVEN)
		{
			attnums = cs->attnums;
			nattnums = cs->nkeys + cs->nset;
		}
		aw_become_writer(first->roleid, &ws);
		for (int i = 0; i < n; i++)
			aw_target_check_domains(t, rel,
									PointerGetDatum(AW_ENTRY_PAYLOAD(rows[i].hdr)),
									attnums, nattnums,
									(first->flags & AW_FLAG_DEFERRED) != 0);
		aw_end_writer(&ws);
	}
	if (first->kind == AW_KIND_INSERT && aw_is_worker &&
		!(first->flags & AW_FLAG_GIVEN))
	{
		AwWriterState ws;
		bool		bulk;

		aw_become_writer(first->roleid, &ws);
		bulk = aw_bulk_insert_usable(rel);
		if (bulk)
			aw_bulk_insert(rel, rows, n);
		aw_end_writer(&ws);
		if (bulk)
		{
			table_close(rel, NoLock);
			return;
		}
	}

	p = aw_plan_for(first, rel);
	keep = palloc(sizeof(bool) * n);
	elems = palloc(sizeof(Datum) * n);
	for (int i = 0; i < n; i++)
	{
		keep[i] = true;
		elems[i] = PointerGetDatum(AW_ENTRY_PAYLOAD(rows[i].hdr));
	}
	if (n > 1 && (first->kind == AW_KIND_UPSERT || first->kind == AW_KIND_UPDATE))
	{
		/* Keys not comparable by their bytes: one by one. */
		if (p->keys_bitwise)
			aw_coalesce_rows(rel, rows, n, keep, elems);
		else
			one_by_one = true;
	}
	for (int i = 0; i < n; i++)
		if (keep[i])
			elems[nelems++] = elems[i];
	if (one_by_one)
	{
		for (int i = 0; i < nelems; i++)
			aw_execute_plan(p, rel, first, &elems[i], 1);
	}
	else
		aw_execute_plan(p, rel, first, elems, nelems);
	table_close(rel, NoLock);
	pfree(elems);
	pfree(keep);
}

/*
 * A row with the columns a keyed write sets taken from row "last" and
 * every other column from row "first".
 */
static Datum
aw_merge_row(Relation rel, AwColumnSets *cs, Datum first, Datum last)
{
	TupleDesc	desc = RelationGetDescr(rel);
	HeapTupleData ft;
	HeapTupleData lt;
	Datum	   *fv = palloc(sizeof(Datum) * desc->natts);
	bool	   *fn = palloc(sizeof(bool) * desc->natts);
	Datum	   *lv = palloc(sizeof(Datum) * desc->natts);
	bool	   *ln = palloc(sizeof(bool) * desc->natts);

	aw_tuple_over(DatumGetHeapTupleHeader(first), &ft);
	aw_tuple_over(DatumGetHeapTupleHeader(last), &lt);
	heap_deform_tuple(&ft, desc, fv, fn);
	heap_deform_tuple(&lt, desc, lv, ln);
	for (int i = 0; i < cs->nset; i++)
	{
		AttrNumber	a = cs->attnums[cs->nkeys + i];

		fv[a - 1] = lv[a - 1];
		fn[a - 1] = ln[a - 1];
	}
	return HeapTupleHeaderGetDatum(heap_form_tuple(desc, fv, fn)->t_data);
}

/*
 * Make a run of upserts or updates (rows as elems[0..n)) give what
 * applying them one by one gives (aw_plan_coalesce groups them by key): an
 * upsert or update of a key becomes its last write (keep[] false for the
 * others), an upsert's row taking the columns it does not set from the
 * key's first write, which is the one that would have inserted it.
 * Increments are summed by their statement (apply_plan.c).
 */
static void
aw_coalesce_rows(Relation rel, AwApplyRow *rows, int n, bool *keep,
				 Datum *elems)
{
	AwColumnSets *cs = aw_entry_colsets(rows[0].hdr);
	uint8		kind = rows[0].hdr->kind;
	int		   *firsts = palloc(sizeof(int) * n);

	aw_plan_coalesce(rel, rows, n, keep, firsts);
	for (int i = 0; i < n; i++)
	{
		if (firsts[i] != i && keep[i] && kind != AW_KIND_UPDATE)
			elems[i] = aw_merge_row(rel, cs, elems[firsts[i]], elems[i]);
	}
	pfree(firsts);
}

/*
 * Run a plan over elems[0..n), as the role that queued the writes.  The
 * sequence defaults of inserts are drawn first, as that role
 * (convert_defaults.c).
 */
static void
aw_execute_plan(AwPlan *p, Relation rel, AwEntryHeader *first, Datum *elems,
				int n)
{
	ArrayType  *arr;
	Datum		arg;
	AwWriterState ws;
	int			rc;

	aw_become_writer(first->roleid, &ws);
	if (first->flags & AW_FLAG_DEFERRED)
	{
		AwDeferredDefaults *d = aw_deferred_defaults(rel);

		for (int i = 0; d != NULL && i < n; i++)
			elems[i] = aw_deferred_fill_row(d, rel, elems[i]);
	}
	arr = construct_array(elems, n, p->rowtype, p->typlen, p->typbyval,
						  p->typalign);
	arg = PointerGetDatum(arr);
	rc = SPI_execute_plan(p->plan, &arg, NULL, false, 0);
	aw_end_writer(&ws);
	if (rc < 0)
		elog(ERROR, "asyncwrite %s failed: %s", aw_kind_name(first->kind),
			 SPI_result_code_string(rc));
	pfree(arr);
}

/*
 * Whether an error is a lost or refused connection to another server: class
 * 08 (postgres_fdw reports a failed connect as 08001, a connection lost as
 * 08006, one it will not use again in this transaction as 08000), or the
 * other server shutting down, crashing or still starting up (57P01-57P03,
 * passed on from it: the worker's own shutdown is FATAL, never caught).
 */
bool
aw_error_is_connection(int sqlerrcode)
{
	switch (sqlerrcode)
	{
		case ERRCODE_ADMIN_SHUTDOWN:
		case ERRCODE_CRASH_SHUTDOWN:
		case ERRCODE_CANNOT_CONNECT_NOW:
			return true;
		default:
			break;
	}
	return ERRCODE_TO_CATEGORY(sqlerrcode) == ERRCODE_CONNECTION_EXCEPTION;
}

/* Whether an error may go away if the write is simply tried again. */
static bool
aw_error_is_transient(int sqlerrcode)
{
	switch (sqlerrcode)
	{
		case ERRCODE_LOCK_NOT_AVAILABLE:
		case ERRCODE_QUERY_CANCELED:
		case ERRCODE_OBJECT_IN_USE:
			return true;
		default:
			break;
	}
	/* Serialization failures, deadlocks, out of memory / disk / connections. */
	return ERRCODE_TO_CATEGORY(sqlerrcode) == ERRCODE_TRANSACTION_ROLLBACK ||
		ERRCODE_TO_CATEGORY(sqlerrcode) == ERRCODE_INSUFFICIENT_RESOURCES ||
		aw_error_is_connection(sqlerrcode);
}

/*
 * Whether a transaction that failed with edata, on its try conn_try, is to
 * be tried again in a new transaction: a connection failure, with tries
 * left (1 + asyncwrite.max_retries in all).
 */
bool
aw_conn_retry_due(ErrorData *edata, int conn_try)
{
	return aw_error_is_connection(edata->sqlerrcode) &&
		conn_try <= aw_max_retries;
}

/* Wait before retry number attempt: retry_delay, doubled each time. */
static void
aw_retry_sleep(int attempt)
{
	int64		delay = aw_retry_delay_ms;
	TimestampTz until;

	for (int i = 1; i < attempt && delay < 60000; i++)
		delay *= 2;
	delay = Min(delay, 60000);
	until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), delay);
	for (;;)
	{
		long		left = (long) ((until - GetCurrentTimestamp()) / 1000);

		if (left <= 0)
			break;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 left, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/*
 * Log that what (writes of the batch, a write) is tried again in a new
 * transaction after a connection failure on try conn_try, and wait for it.
 */
void
aw_conn_retry_wait(const char *what, ErrorData *edata, int conn_try)
{
	MemoryContext oldcontext = CurrentMemoryContext;

	ereport(LOG,
			(errmsg("asyncwrite %s hit a connection failure, try %d of %d: %s",
					what, conn_try, aw_max_retries + 1,
					edata->message ? edata->message : ""),
			 errdetail("The transaction is rolled back and tried again in a new one: a connection lost in a transaction cannot be used again in it.")));

	/*
	 * Outside any transaction and any handler of the caller's: a cancel
	 * (pg_cancel_backend) ends the wait, as it ends a try, not the worker.
	 */
	PG_TRY();
	{
		aw_retry_sleep(conn_try);
	}
	PG_CATCH();
	{
		ErrorData  *cancel;

		MemoryContextSwitchTo(oldcontext);
		cancel = CopyErrorData();
		if (cancel->sqlerrcode != ERRCODE_QUERY_CANCELED)
			PG_RE_THROW();
		FlushErrorState();
		ereport(LOG,
				(errmsg("asyncwrite %s: wait for try %d ended: %s",
						what, conn_try + 1, cancel->message)));
		FreeErrorData(cancel);
	}
	PG_END_TRY();
}

/*
 * Apply rows[0..n) in a subtransaction.  Returns NULL on success, or the
 * error, with the subtransaction rolled back.  What the attempt allocates
 * goes in a context of its own, freed when it ends either way: a batch may
 * make thousands of attempts.
 */
static ErrorData *
aw_try_insert(AwApplyRow *rows, int n)
{
	MemoryContext oldcontext = CurrentMemoryContext;
	MemoryContext attemptcxt = AllocSetContextCreate(oldcontext,
													 "asyncwrite attempt",
													 ALLOCSET_DEFAULT_SIZES);
	ResourceOwner oldowner = CurrentResourceOwner;
	ErrorData  *volatile edata = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(attemptcxt);
	PG_TRY();
	{
		aw_insert_rows(rows, n);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(oldcontext);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		aw_writer_reset();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
	}
	PG_END_TRY();
	MemoryContextDelete(attemptcxt);
	return edata;
}

/*
 * A connection failure met in a transaction on its try conn_try: while
 * tries are left, roll the transaction back (re-raise the error, which the
 * caller catches outside it) to be tried again in a new one; else it is
 * recorded as failed like any other error.
 */
static void
aw_conn_failure_abort(ErrorData *edata, int conn_try)
{
	if (aw_conn_retry_due(edata, conn_try))
		ReThrowError(edata);
}

/*
 * Apply one write on its own, trying a transient error again up to
 * asyncwrite.max_retries times; record it as failed otherwise.  A
 * connection failure is not tried again in this transaction (see
 * aw_conn_failure_abort): recorded, it counts the transaction's tries.
 */
static void
aw_apply_row(AwApplyRow *row, int conn_try, uint64 *napplied, uint64 *nfailed)
{
	for (int attempt = 1;; attempt++)
	{
		ErrorData  *edata = aw_try_insert(row, 1);

		if (edata == NULL)
		{
			(*napplied)++;
			return;
		}
		if (aw_error_is_connection(edata->sqlerrcode))
		{
			aw_conn_failure_abort(edata, conn_try);
			aw_dead_letter_record(row, edata, conn_try);
			FreeErrorData(edata);
			(*nfailed)++;
			return;
		}
		if (aw_error_is_transient(edata->sqlerrcode) && attempt <= aw_max_retries)
		{
			ereport(LOG,
					(errmsg("asyncwrite write " UINT64_FORMAT " hit a transient error, try %d of %d: %s",
							row->write_id, attempt, aw_max_retries + 1,
							edata->message ? edata->message : "")));
			FreeErrorData(edata);
			aw_retry_sleep(attempt);
			continue;
		}
		aw_dead_letter_record(row, edata, attempt);
		FreeErrorData(edata);
		(*nfailed)++;
		return;
	}
}

/*
 * Apply one run; on failure, split it in halves and apply each the same
 * way, down to single writes: a few bad writes in a large batch cost a few
 * subtransactions per bad write, not one per write.
 */
static void
aw_apply_run(AwApplyRow *rows, int n, int conn_try, uint64 *napplied,
			 uint64 *nfailed)
{
	ErrorData  *edata;
	int			half;

	if (n == 1)
	{
		aw_apply_row(rows, conn_try, napplied, nfailed);
		return;
	}
	edata = aw_try_insert(rows, n);
	if (edata == NULL)
	{
		*napplied += n;
		return;
	}
	if (aw_error_is_connection(edata->sqlerrcode))
		aw_conn_failure_abort(edata, conn_try);
	if (aw_error_is_transient(edata->sqlerrcode) ||
		edata->sqlerrcode == ERRCODE_INSUFFICIENT_PRIVILEGE ||
		edata->sqlerrcode == ERRCODE_UNDEFINED_TABLE ||
		edata->sqlerrcode == ERRCODE_UNDEFINED_OBJECT ||
		edata->sqlerrcode == ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE)
	{
		/*
		 * Likely to fail every write alike (a lock or statement timeout, a
		 * revoked privilege, a dropped or changed table, a dropped role):
		 * halving would try each write about twice; go one by one at once.
		 */
		FreeErrorData(edata);
		for (int i = 0; i < n; i++)
			aw_apply_row(&rows[i], conn_try, napplied, nfailed);
		return;
	}
	FreeErrorData(edata);
	half = n / 2;
	aw_apply_run(rows, half, conn_try, napplied, nfailed);
	aw_apply_run(rows + half, n - half, conn_try, napplied, nfailed);
}

/* Whether two writes can share one INSERT statement. */
static bool
aw_same_run(AwEntryHeader *a, AwEntryHeader *b)
{
	AwColumnSets *ca = aw_entry_colsets(a);
	AwColumnSets *cb = aw_entry_colsets(b);

	if (a->relid != b->relid || a->roleid != b->roleid ||
		a->fingerprint != b->fingerprint || a->kind != b->kind ||
		(a->flags & AW_FLAG_RETRY) || (b->flags & AW_FLAG_RETRY) ||
		a->flags != b->flags)
		return false;
	return ca == NULL ||
		(ca->nkeys == cb->nkeys && ca->nset == cb->nset &&
		 memcmp(ca, cb, AW_COLSETS_SIZE(ca->nkeys, ca->nset)) == 0);
}

/*
 * Apply rows[0..n) inside the current transaction, run by run; conn_try
 * is the transaction's try (see aw_conn_failure_abort).
 */
static void
aw_apply_runs(AwApplyRow *rows, int n, int conn_try, uint64 *napplied,
			  uint64 *nfailed)
{
	int			i = 0;

	/*
	 * Deferred constraints fail inside the run's subtransaction, not at
	 * commit.
	 */
	if (SPI_execute("SET CONSTRAINTS ALL IMMEDIATE", false, 0) != SPI_OK_UTILITY)
		elog(ERROR, "could not make constraints immediate");
	while (i < n)
	{
		int			j = i + 1;

		while (j < n && aw_same_run(rows[i].hdr, rows[j].hdr))
			j++;
		aw_apply_run(rows + i, j - i, conn_try, napplied, nfailed);
		i = j;
		CHECK_FOR_INTERRUPTS();
	}
}

/*
 * Apply rows inside the caller's transaction, its try conn_try, each
 * failure isolated and recorded as for a batch (prepared writes released by
 * COMMIT PREPARED).  A connection failure raises an error while tries are
 * left (aw_conn_retry_due): the caller tries again in a new transaction.
 */
void
aw_apply_in_xact(AwApplyRow *rows, int nrows, int conn_try, uint64 *napplied,
				 uint64 *nfailed)
{
	aw_apply_runs(rows, nrows, conn_try, napplied, nfailed);
}

/*
 * The work of a checked transaction: apply rows, or record one as failed;
 * and set the applied mark of durable writes with them.
 */
typedef struct AwXactWork
{
	AwApplyRow *rows;
	int			nrows;
	uint64	   *napplied;
	uint64	   *nfailed;
	ErrorData  *edata;			/* set: record rows[0] as failed with it */
	uint64		mark_id;		/* every write id up to it is done at commit */
	XLogRecPtr	replay_from;	/* no WAL before it is needed then, or
								 * InvalidXLogRecPtr */
	int			conn_try;		/* this transaction's try, counting those a
								 * connection failure rolled back */
} AwXactWork;

/* Whether every write of rows was logged to the WAL (asyncwrite.durable). */
static bool
aw_rows_durable(const AwApplyRow *rows, int nrows)
{
	for (int i = 0; i < nrows; i++)
		if (!(rows[i].hdr->flags & AW_FLAG_DURABLE))
			return false;
	return nrows > 0;
}

/*
 * Do w in a transaction of its own that first makes the batch's checks
 * (aw_apply_refusal), with SPI and a snapshot, allocating in cxt.  *result
 * is 0 once it committed, with interrupts held until the caller has
 * released what it applied from the queue: a termination (SIGTERM is die)
 * in between would have the writes applied again by the next worker, and
 * CommitTransaction holds interrupts until it returns, so none is processed
 * in between.  Else *result is a refusal, nothing done, or AW_BATCH_RETRY
 * if the check itself failed.  An error in the work propagates with the
 * transaction open, for the caller's PG_CATCH to abort.
 */
static void
aw_apply_checked_xact(volatile int *result, MemoryContext cxt, AwXactWork *w)
{
	StartTransactionCommand();
	aw_writer_reset();			/* the worker's own session, whatever failed */
	*result = AW_BATCH_RETRY;	/* should the check itself fail */
	*result = aw_apply_refusal();
	if (*result != 0)
	{
		AbortCurrentTransaction();
		return;
	}
	MemoryContextSwitchTo(cxt);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	if (w->edata != NULL)
		aw_dead_letter_record(&w->rows[0], w->edata, w->conn_try);
	else
		aw_apply_runs(w->rows, w->nrows, w->conn_try, w->napplied, w->nfailed);
	aw_mark_write(w->mark_id, w->replay_from);
	PopActiveSnapshot();
	SPI_finish();

	/*
	 * When every write of the transaction is durable, its commit need not
	 * wait for the WAL flush: if a crash loses it, the applied mark goes with
	 * it, and the writes come back from the WAL to be applied again (no slot
	 * moves past a commit before flushing it: see aw_wal_advance_slot).  The
	 * rows become visible sooner, and the worker never waits for the disk.
	 */
	if (aw_rows_durable(w->rows, w->nrows))
		(void) set_config_option("synchronous_commit", "off", PGC_SUSET,
								 PGC_S_SESSION, GUC_ACTION_LOCAL, true, 0, false);
	CommitTransactionCommand();
	HOLD_INTERRUPTS();
}

/*
 * Apply one write in a transaction of its own, from its try first_try on
 * (the tries of its batch count); if even that transaction cannot commit,
 * record the write as failed in another one.  A connection failure rolls
 * the transaction back and, while tries are left, it is tried again in a
 * new one.  Returns AW_ALONE_DONE with interrupts held, which the caller
 * resumes once it has released the write from the queue (see
 * aw_apply_checked_xact); AW_ALONE_STUCK if the write could be neither
 * applied nor recorded; or a refusal (AW_BATCH_*), nothing done.
 */
static int
aw_apply_alone(AwApplyRow *row, uint64 mark_id, MemoryContext cxt,
			   int first_try, uint64 *napplied, uint64 *nfailed)
{
	volatile int result = AW_ALONE_STUCK;
	uint64		a = 0;
	uint64		f = 0;
	AwXactWork	w = {row, 1, &a, &f, NULL, mark_id, InvalidXLogRecPtr, first_try};

	for (;; w.conn_try++)
	{
		char		what[64];

		result = AW_ALONE_STUCK;
		a = 0;
		f = 0;
		PG_TRY();
		{
			aw_apply_checked_xact(&result, cxt, &w);
		}
		PG_CATCH();
		{
			/* The write failed, or the check itself (result < 0). */
			MemoryContextSwitchTo(cxt);
			w.edata = CopyErrorData();
			FlushErrorState();
			AbortCurrentTransaction();
		}
		PG_END_TRY();
		if (result < 0)
			return result;
		if (w.edata == NULL)
		{
			*napplied += a;
			*nfailed += f;
			return AW_ALONE_DONE;
		}
		if (!aw_conn_retry_due(w.edata, w.conn_try))
			break;
		snprintf(what, sizeof(what), "write " UINT64_FORMAT, row->write_id);
		aw_conn_retry_wait(what, w.edata, w.conn_try);
		FreeErrorData(w.edata);
		w.edata = NULL;
	}

	PG_TRY();
	{
		aw_apply_checked_xact(&result, cxt, &w);
		if (result == 0)
			result = AW_ALONE_DONE;
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		EmitErrorReport();
		FlushErrorState();
		AbortCurrentTransaction();
		result = AW_ALONE_STUCK;
	}
	PG_END_TRY();
	if (result == AW_ALONE_DONE)
		(*nfailed)++;
	return result;
}

/*
 * Whether queued writes may be applied in this database now, checked at
 * the start of each batch's transaction: the asyncwrite extension exists,
 * and its object is locked until the batch commits, so that a concurrent
 * DROP EXTENSION (or DROP SCHEMA ... CASCADE, DROP OWNED) waits for the
 * batch and one that committed first is seen, whatever dropped it (the
 * pattern of Citus' maintenance daemon); and the database allows
 * connections (ALLOW_CONNECTIONS false holds its writes).
 */
static int
aw_apply_refusal(void)
{
	Oid			extoid = get_extension_oid("asyncwrite", true);
	HeapTuple	tup;
	bool		allowconn;

	if (!OidIsValid(extoid))
		return AW_BATCH_NO_EXTENSION;
	LockDatabaseObject(ExtensionRelationId, extoid, 0, AccessShareLock);
	/* A DROP we waited for has committed: look again, afresh. */
	InvalidateCatalogSnapshot();
	if (get_extension_oid("asyncwrite", true) != extoid)
		return AW_BATCH_NO_EXTENSION;
	tup = SearchSysCache1(DATABASEOID, ObjectIdGetDatum(MyDatabaseId));
	allowconn = HeapTupleIsValid(tup) &&
		((Form_pg_database) GETSTRUCT(tup))->datallowconn;
	if (HeapTupleIsValid(tup))
		ReleaseSysCache(tup);
	return allowconn ? 0 : AW_BATCH_CLOSED;
}

/*
 * Apply a batch of writes in one transaction and release them from the
 * queue, up to end_pos and write id last_id (entries skipped after the last
 * row included), setting the applied mark to last_id and replay_from with
 * them; returns how many of the rows were handled (applied or
 * recorded as failed), or, applying nothing, AW_BATCH_NO_EXTENSION or
 * AW_BATCH_CLOSED (see aw_apply_refusal), or AW_BATCH_RETRY when that check
 * failed (a lock timeout waiting for a DROP in progress, say).
 *
 * Interrupts stay held from each commit to the release of what it applied
 * (see aw_apply_checked_xact).
 *
 * A connection failure rolls the whole batch back; it is tried again in a
 * new transaction after asyncwrite.retry_delay (doubled each time), up to
 * asyncwrite.max_retries times, and on its last try a connection failure
 * is recorded as failed like any other error.  Nothing is released in
 * between, so each try applies the same writes.
 *
 * If the batch transaction fails as a whole otherwise (say, recording a
 * dead letter failed, or a foreign server refused its commit), each write
 * is tried again in a transaction of its own, from the batch's last try
 * on, and released from the queue as soon as that commits, so that a later
 * failure cannot make the worker apply it twice.  A write that can be
 * neither applied nor recorded pauses the queue, and stays at its head,
 * with a WARNING: nothing is dropped and nothing loops.
 */
int
aw_apply_batch(AwQueue *q, AwApplyRow *rows, int nrows, uint64 end_pos,
			   uint64 last_id, XLogRecPtr replay_from, uint64 *napplied,
			   uint64 *nfailed)
{
	MemoryContext batchcxt = AllocSetContextCreate(TopMemoryContext,
												   "asyncwrite batch",
												   ALLOCSET_DEFAULT_SIZES);
	MemoryContext oldcontext = CurrentMemoryContext;
	volatile bool ok = true;
	volatile int refusal = 0;
	int			handled = nrows;
	AwXactWork	w = {rows, nrows, napplied, nfailed, NULL, last_id, replay_from, 1};

	/*
	 * The batch's entries stay queued, and so its rows valid, until
	 * aw_queue_consume releases them: a batch tried again after a connection
	 * failure finds the same rows.  A failed try holds no interrupts (held
	 * only from a commit to the release) and no locks: the wait between tries
	 * is outside any transaction.
	 */
	for (;; w.conn_try++)
	{
		ErrorData  *volatile failure = NULL;
		char		what[64];

		*napplied = 0;
		*nfailed = 0;
		ok = true;
		refusal = 0;
		PG_TRY();
		{
			SetCurrentStatementStartTimestamp();
			aw_apply_checked_xact(&refusal, batchcxt, &w);
		}
		PG_CATCH();
		{
			MemoryContextSwitchTo(batchcxt);
			failure = CopyErrorData();
			/* Logged here unless tried again (then logged as such). */
			if (!aw_conn_retry_due(failure, w.conn_try))
				EmitErrorReport();
			FlushErrorState();
			AbortCurrentTransaction();
			ok = false;
		}
		PG_END_TRY();
		MemoryContextSwitchTo(oldcontext);
		if (ok || refusal != 0 || !aw_conn_retry_due(failure, w.conn_try))
			break;
		snprintf(what, sizeof(what), "writes " UINT64_FORMAT " to " UINT64_FORMAT,
				 rows[0].write_id, rows[nrows - 1].write_id);
		aw_conn_retry_wait(what, failure, w.conn_try);
		FreeErrorData(failure);
	}

	if (refusal != 0)
		handled = refusal;
	else if (ok)
	{
		/* Counted before release: a flush() that returns sees the counts. */
		aw_queue_batch_count(q, *napplied, *nfailed, true);
		aw_queue_consume(q, end_pos, last_id);
		RESUME_INTERRUPTS();
	}
	else
	{
		uint64		counted_applied = 0;
		uint64		counted_failed = 0;

		*napplied = 0;
		*nfailed = 0;
		for (int i = 0; i < nrows; i++)
		{
			uint64		mark_id = (i == nrows - 1) ? last_id : rows[i].write_id;
			int			outcome = aw_apply_alone(&rows[i], mark_id, batchcxt,
												 w.conn_try, napplied, nfailed);

			if (outcome < 0)
			{
				/* Refused: what came before is released; the worker sees why. */
				handled = i;
				break;
			}
			if (outcome == AW_ALONE_STUCK)
			{
				Latch	   *latch;
				bool		pending;

				(void) aw_queue_set_paused(q, MyDatabaseId, true, &latch,
										   &pending);
				ereport(WARNING,
						(errmsg("asyncwrite paused the queue of database %u: write " UINT64_FORMAT " can be neither applied nor recorded as failed",
								MyDatabaseId, rows[i].write_id),
						 errhint("Fix the error logged above (asyncwrite.dead_letters must accept rows), then call asyncwrite.resume().")));
				handled = i;
				break;
			}
			aw_queue_batch_count(q, *napplied - counted_applied,
								 *nfailed - counted_failed, i == 0);
			counted_applied = *napplied;
			counted_failed = *nfailed;
			if (i == nrows - 1)
				aw_queue_consume(q, end_pos, last_id);
			else
				aw_queue_consume(q, rows[i].end_pos, rows[i].write_id);
			RESUME_INTERRUPTS();
			MemoryContextSwitchTo(oldcontext);
		}
	}
	MemoryContextSwitchTo(oldcontext);
	MemoryContextDelete(batchcxt);
	return handled;
}

/*
 * Write one entry synchronously in the caller's transaction, as the role it
 * records (the caller's): asyncwrite.enabled = off, on_full = sync, a
 * transaction holding more than the queue should take, or its kept writes
 * before table DDL.
 */
void
aw_apply_now(AwEntryHeader *hdr)
{
	AwApplyRow	r;

	r.hdr = hdr;
	r.write_id = 0;
	r.end_pos = 0;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	aw_insert_rows(&r, 1);
	SPI_finish();
}
