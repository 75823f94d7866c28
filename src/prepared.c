/*-------------------------------------------------------------------------
 *
 * prepared.c
 *		Two-phase commit: writes kept by a transaction that is prepared are
 *		stored in asyncwrite.prepared_writes by the transaction itself, so
 *		they commit or roll back with it.  After COMMIT PREPARED the worker
 *		moves the now visible rows into the queue, deleting them in the same
 *		transaction, so each is applied exactly once; after ROLLBACK PREPARED
 *		they never existed.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "asyncwrite.h"

static SPIPlanPtr aw_store_plan = NULL;

/* The owner of asyncwrite.prepared_writes, as whom it is written. */
static Oid
aw_prepared_table_owner(void)
{
	Oid			nsp = get_namespace_oid("asyncwrite", false);
	Oid			relid = get_relname_relid("prepared_writes", nsp);
	HeapTuple	tup;
	Oid			owner;

	if (!OidIsValid(relid))
		elog(ERROR, "table asyncwrite.prepared_writes does not exist");
	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	return owner;
}

/*
 * Store one kept write as a row of the transaction being prepared.  Runs
 * at XACT_EVENT_PRE_PREPARE, as the table's owner, in a security-restricted
 * operation with fixed SQL.
 */
void
aw_prepared_store(Oid relid, Oid roleid, uint32 fingerprint,
				  uint8 kind, uint32 flags, const char *payload,
				  Size payload_len, const char *extra, Size extra_len)
{
	Oid			argtypes[7] = {OIDOID, OIDOID, INT8OID, INT2OID,
	INT4OID, BYTEAOID, BYTEAOID};
	Datum		values[7];
	char		nulls[7] = {' ', ' ', ' ', ' ', ' ', ' ', ' '};
	bytea	   *p = palloc(VARHDRSZ + payload_len);
	Oid			save_userid;
	int			save_sec_context;
	int			rc;

	SET_VARSIZE(p, VARHDRSZ + payload_len);
	memcpy(VARDATA(p), payload, payload_len);
	values[0] = ObjectIdGetDatum(relid);
	values[1] = ObjectIdGetDatum(roleid);
	values[2] = Int64GetDatum((int64) fingerprint);
	values[3] = Int16GetDatum((int16) kind);
	values[4] = Int32GetDatum((int32) flags);
	values[5] = PointerGetDatum(p);
	if (extra_len > 0)
	{
		bytea	   *e = palloc(VARHDRSZ + extra_len);

		SET_VARSIZE(e, VARHDRSZ + extra_len);
		memcpy(VARDATA(e), extra, extra_len);
		values[6] = PointerGetDatum(e);
	}
	else
		nulls[6] = 'n';

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(aw_prepared_table_owner(),
						   save_sec_context | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	if (aw_store_plan == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare("INSERT INTO asyncwrite.prepared_writes "
									   "(relid, roleid, fingerprint, kind, flags, payload, extra) "
									   "VALUES ($1, $2, $3, $4, $5, $6, $7)",
									   7, argtypes);

		if (plan == NULL || SPI_keepplan(plan) != 0)
			elog(ERROR, "could not prepare asyncwrite prepared-write insert");
		aw_store_plan = plan;
	}
	rc = SPI_execute_plan(aw_store_plan, values, nulls, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "could not store asyncwrite prepared write: %s",
			 SPI_result_code_string(rc));
	PopActiveSnapshot();
	SPI_finish();
	SetUserIdAndSecContext(save_userid, save_sec_context);
}

/*
 * In the worker: apply the writes of committed prepared transactions, in
 * one transaction with their deletion from asyncwrite.prepared_writes, so
 * each is applied exactly once; failures go to dead_letters as for a
 * batch.  Returns how many there were.
 */
uint64
aw_prepared_sweep(void)
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
		rows[i].hdr = aw_entry_from_spec(&w);
	}
	if (n > 0)
		aw_apply_in_xact(rows, (int) n, &napplied, &nfailed);
	PopActiveSnapshot();
	SPI_finish();
	CommitTransactionCommand();
	return n;
}
