/*-------------------------------------------------------------------------
 *
 * retry.c
 *		asyncwrite.retry_failed(): put dead letters back in the queue.  A
 *		retried write is applied, like the original, as the role that first
 *		queued it; its dead letter is removed when the retry is applied, or
 *		updated (attempts, error) when it fails again.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/relation.h"
#include "access/table.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "asyncwrite.h"

PG_FUNCTION_INFO_V1(aw_retry_failed);

/*
 * Queue one dead letter again.  Returns false (with a NOTICE) when it
 * cannot be: no payload was kept, or its table is gone.
 */
static bool
aw_retry_one(int64 id, Oid relid, Datum payload, bool payload_null, Oid roleid)
{
	Relation	rel;
	AwTarget   *t;
	Datum		row;
	HeapTupleHeader td;
	uint64		write_id;

	if (payload_null)
	{
		ereport(NOTICE,
				(errmsg("dead letter " INT64_FORMAT " cannot be retried: its row was not kept", id),
				 errdetail("The table's columns had changed when the write failed.")));
		return false;
	}
	rel = try_relation_open(relid, RowExclusiveLock);
	if (rel == NULL)
	{
		ereport(NOTICE,
				(errmsg("dead letter " INT64_FORMAT " cannot be retried: its table no longer exists", id)));
		return false;
	}
	t = aw_target_get(rel);
	row = aw_row_from_jsonb(rel, t, payload, true);
	td = DatumGetHeapTupleHeader(row);
	if (!aw_queue_submit(relid, roleid, aw_target_fingerprint(t),
						 (uint16) RelationGetDescr(rel)->natts, AW_KIND_INSERT,
						 AW_FLAG_RETRY, td, HeapTupleHeaderGetDatumLength(td),
						 &id, sizeof(id), &write_id))
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("asyncwrite queue is full"),
				 errdetail("Retries are always queued, even with asyncwrite.on_full = \"sync\".")));
	table_close(rel, NoLock);
	return true;
}

/*
 * asyncwrite.retry_failed(id bigint DEFAULT NULL): queue one dead letter, or
 * every one the caller may retry, again.  Returns how many were queued.
 * The caller sees dead letters through the table's row-level security and
 * may retry its own; a superuser may retry any.
 */
Datum
aw_retry_failed(PG_FUNCTION_ARGS)
{
	bool		all = PG_ARGISNULL(0);
	Datum		arg = all ? (Datum) 0 : PG_GETARG_DATUM(0);
	Oid			argtype = INT8OID;
	Oid			userid = GetUserId();
	bool		is_super = superuser();
	int64		queued = 0;
	uint64		nrows;

	aw_check_available();
	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot queue writes during recovery")));
	PreventCommandIfReadOnly("asyncwrite.retry_failed()");

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("SELECT id, target, payload, role FROM asyncwrite.dead_letters "
							  "WHERE $1 IS NULL OR id = $1 ORDER BY id",
							  1, &argtype, &arg, all ? "n" : " ", true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read asyncwrite.dead_letters");
	nrows = SPI_processed;
	if (!all && nrows == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("dead letter " INT64_FORMAT " does not exist or is not visible to you",
						DatumGetInt64(arg))));

	for (uint64 i = 0; i < nrows; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		bool		payload_null;
		int64		id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		Oid			relid = DatumGetObjectId(SPI_getbinval(tup, desc, 2, &isnull));
		Datum		payload = SPI_getbinval(tup, desc, 3, &payload_null);
		Oid			roleid = DatumGetObjectId(SPI_getbinval(tup, desc, 4, &isnull));

		if (roleid != userid && !is_super)
		{
			if (!all)
				ereport(ERROR,
						(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
						 errmsg("permission denied to retry dead letter " INT64_FORMAT, id),
						 errdetail("Only the role that queued the write, or a superuser, may retry it.")));
			continue;
		}
		if (aw_retry_one(id, relid, payload, payload_null, roleid))
			queued++;
	}
	SPI_finish();
	PG_RETURN_INT64(queued);
}
