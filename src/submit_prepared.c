/*-------------------------------------------------------------------------
 *
 * submit_prepared.c
 *		Two-phase commit: writes kept by a transaction that is prepared are
 *		stored in asyncwrite.prepared_writes by the transaction itself, so
 *		they commit or roll back with it.  After COMMIT PREPARED the worker
 *		applies the now visible rows (apply_prepared.c); after ROLLBACK
 *		PREPARED they never existed.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "commands/extension.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "submit.h"

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
aw_prepared_store(const AwWriteSpec *w)
{
	Oid			argtypes[7] = {OIDOID, OIDOID, INT8OID, INT2OID,
	INT4OID, BYTEAOID, BYTEAOID};
	Datum		values[7];
	char		nulls[7] = {' ', ' ', ' ', ' ', ' ', ' ', ' '};
	bytea	   *p = palloc(VARHDRSZ + w->payload_len);
	Oid			save_userid;
	int			save_sec_context;
	int			rc;

	SET_VARSIZE(p, VARHDRSZ + w->payload_len);
	memcpy(VARDATA(p), w->payload, w->payload_len);
	values[0] = ObjectIdGetDatum(w->relid);
	values[1] = ObjectIdGetDatum(w->roleid);
	values[2] = Int64GetDatum((int64) w->fingerprint);
	values[3] = Int16GetDatum((int16) w->kind);
	values[4] = Int32GetDatum((int32) w->flags);
	values[5] = PointerGetDatum(p);
	if (w->extra_len > 0)
	{
		bytea	   *e = palloc(VARHDRSZ + w->extra_len);

		SET_VARSIZE(e, VARHDRSZ + w->extra_len);
		memcpy(VARDATA(e), w->extra, w->extra_len);
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
 * Whether prepared transaction gid (of this database) stored kept writes,
 * for COMMIT PREPARED to have them applied: it then holds a lock on
 * asyncwrite.prepared_writes, as a prepared transaction keeps its locks
 * (under the virtual transaction that holds its transaction id's lock).
 * False in a database without the extension.
 */
bool
aw_prepared_kept_writes(const char *gid)
{
	Oid			argtypes[3] = {TEXTOID, OIDOID, OIDOID};
	Datum		values[3];
	Oid			nsp;
	Oid			relid;
	bool		isnull;
	bool		kept;

	if (!OidIsValid(get_extension_oid("asyncwrite", true)) ||
		!OidIsValid(nsp = get_namespace_oid("asyncwrite", true)) ||
		!OidIsValid(relid = get_relname_relid("prepared_writes", nsp)))
		return false;
	values[0] = CStringGetTextDatum(gid);
	values[1] = ObjectIdGetDatum(relid);
	values[2] = ObjectIdGetDatum(MyDatabaseId);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("SELECT EXISTS (SELECT FROM pg_catalog.pg_prepared_xacts p "
							  "JOIN pg_catalog.pg_locks x ON x.locktype OPERATOR(pg_catalog.=) 'transactionid' "
							  "AND x.transactionid OPERATOR(pg_catalog.=) p.transaction "
							  "JOIN pg_catalog.pg_locks l ON l.virtualtransaction "
							  "OPERATOR(pg_catalog.=) x.virtualtransaction "
							  "WHERE p.gid OPERATOR(pg_catalog.=) $1 "
							  "AND l.locktype OPERATOR(pg_catalog.=) 'relation' "
							  "AND l.relation OPERATOR(pg_catalog.=) $2 "
							  "AND l.database OPERATOR(pg_catalog.=) $3)",
							  3, argtypes, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not look up prepared transaction \"%s\"", gid);
	kept = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
									  SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
	return kept;
}
