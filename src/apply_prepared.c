/*-------------------------------------------------------------------------
 *
 * apply_prepared.c
 *		The worker's side of two-phase commit.  A prepared transaction
 *		stores its kept writes in asyncwrite.prepared_writes
 *		(submit_prepared.c), where they become visible when COMMIT PREPARED
 *		commits them and vanish with ROLLBACK PREPARED.  After a COMMIT
 *		PREPARED, the worker applies the now visible rows, deleting them in
 *		the same transaction, so each is applied exactly once.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "apply.h"

/*
 * Apply the writes of committed prepared transactions, in one transaction
 * (its try conn_try, see aw_apply_in_xact) with their deletion from
 * asyncwrite.prepared_writes, so each is applied exactly once; failures go
 * to dead_letters as for a batch.  Returns how many there were.
 */
static uint64
aw_prepared_sweep_xact(int conn_try)
{
	uint64		n;
	uint64		napplied = 0;
	uint64		nfailed = 0;
	AwApplyRow *rows;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	if (SPI_execute("WITH d AS (DELETE FROM asyncwrite.prepared_writes RETURNING *) "
					"SELECT relid, roleid, fingerprint, kind, flags, payload, extra "
					"FROM d ORDER BY id", false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read asyncwrite.prepared_writes");
	n = SPI_processed;
	rows = palloc0(sizeof(AwApplyRow) * Max(n, 1));
	for (uint64 i = 0; i < n; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		bool		extra_null;
		bytea	   *payload;
		bytea	   *extra = NULL;
		Datum		d;
		AwWriteSpec w;

		payload = DatumGetByteaPP(SPI_getbinval(tup, desc, 6, &isnull));
		d = SPI_getbinval(tup, desc, 7, &extra_null);
		if (!extra_null)
			extra = DatumGetByteaPP(d);
		w.relid = DatumGetObjectId(SPI_getbinval(tup, desc, 1, &isnull));
		w.roleid = DatumGetObjectId(SPI_getbinval(tup, desc, 2, &isnull));
		w.fingerprint = (uint32) DatumGetInt64(SPI_getbinval(tup, desc, 3, &isnull));
		w.kind = (uint8) DatumGetInt16(SPI_getbinval(tup, desc, 4, &isnull));
		w.flags = (uint32) DatumGetInt32(SPI_getbinval(tup, desc, 5, &isnull));
		w.payload = VARDATA_ANY(payload);
		w.payload_len = VARSIZE_ANY_EXHDR(payload);
		w.extra = extra ? VARDATA_ANY(extra) : NULL;
		w.extra_len = extra ? VARSIZE_ANY_EXHDR(extra) : 0;
		rows[i].hdr = aw_entry_make(&w, GetCurrentTimestamp());
	}
	if (n > 0)
		aw_apply_in_xact(rows, (int) n, conn_try, &napplied, &nfailed);
	PopActiveSnapshot();
	SPI_finish();
	CommitTransactionCommand();
	return n;
}

/*
 * Sweep on try conn_try: returns NULL, with *n the writes swept, or the
 * connection failure that rolled the sweep back while tries are left
 * (aw_conn_retry_due); any other error propagates.
 */
static ErrorData *
aw_prepared_sweep_try(int conn_try, uint64 *n)
{
	MemoryContext oldcontext = CurrentMemoryContext;
	ErrorData  *volatile failure = NULL;

	PG_TRY();
	{
		*n = aw_prepared_sweep_xact(conn_try);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(oldcontext);
		failure = CopyErrorData();
		if (!aw_conn_retry_due(failure, conn_try))
			PG_RE_THROW();
		FlushErrorState();
		AbortCurrentTransaction();
	}
	PG_END_TRY();
	return failure;
}

/*
 * Sweep the writes of committed prepared transactions (see
 * aw_prepared_sweep_xact).  A connection failure rolls the sweep back, to
 * be tried again in a new transaction while tries are left, as a batch is;
 * any other error propagates, the rows staying for the next sweep.
 */
uint64
aw_prepared_sweep(void)
{
	for (int conn_try = 1;; conn_try++)
	{
		uint64		n = 0;
		ErrorData  *failure = aw_prepared_sweep_try(conn_try, &n);

		if (failure == NULL)
			return n;
		aw_conn_retry_wait("writes of committed prepared transactions",
						   failure, conn_try);
		FreeErrorData(failure);
	}
}
