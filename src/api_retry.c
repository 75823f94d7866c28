/*-------------------------------------------------------------------------
 *
 * api_retry.c
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
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "api.h"
#include "submit.h"

PG_FUNCTION_INFO_V1(aw_retry_failed);

/* The write kind named in a dead letter's operation. */
static uint8
aw_kind_from_name(const char *op)
{
	for (uint8 kind = AW_KIND_INSERT; kind <= AW_KIND_INCREMENT; kind++)
		if (strcmp(op, aw_kind_name(kind)) == 0)
			return kind;
	elog(ERROR, "unknown asyncwrite operation \"%s\"", op);
	return AW_KIND_INSERT;		/* keep compiler quiet */
}

/* Attribute numbers of a text[] of column names. */
static int
aw_names_attnums(Relation rel, Datum names, bool isnull, AttrNumber *out)
{
	Datum	   *elems;
	int			n;

	if (isnull)
		return 0;
	deconstruct_array(DatumGetArrayTypeP(names), TEXTOID, -1, false, TYPALIGN_INT,
					  &elems, NULL, &n);
	for (int i = 0; i < n; i++)
	{
		out[i] = get_attnum(RelationGetRelid(rel), TextDatumGetCString(elems[i]));
		if (out[i] == InvalidAttrNumber)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("column \"%s\" of relation \"%s\" does not exist",
							TextDatumGetCString(elems[i]), RelationGetRelationName(rel))));
	}
	return n;
}

/*
 * Queue one dead letter again.  Returns false (with a NOTICE) when it
 * cannot be: no payload was kept, or its table is gone.
 */
static bool
aw_retry_one(int64 id, Oid relid, Datum payload, bool payload_null, Oid roleid,
			 uint8 kind, Datum keycols, bool keys_null, Datum setcols, bool set_null)
{
	char	   *extra;
	Size		cs_len = 0;
	AwColumnSets *cs = NULL;
	Relation	rel;
	AwTarget   *t;
	Datum		row;
	HeapTupleHeader td;
	AwWriteSpec w;
	uint64		write_id;
	Oid			save_userid;
	int			save_sec_context;
	int			save_nestlevel;

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
	if (!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(roleid)))
	{
		table_close(rel, RowExclusiveLock);
		ereport(NOTICE,
				(errmsg("dead letter " INT64_FORMAT " cannot be retried: its role no longer exists", id)));
		return false;
	}
	t = aw_target_get(rel);

	/*
	 * The row is converted again (input functions, domain checks, defaults of
	 * columns added since) as the role that queued it, in a
	 * security-restricted operation: never as the caller, who may be a
	 * superuser retrying another role's write.
	 */
	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(roleid, save_sec_context | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	save_nestlevel = NewGUCNestLevel();
	row = aw_row_from_jsonb(rel, t, payload, AW_CONVERT_RESTORING |
							(kind == AW_KIND_INSERT ? AW_CONVERT_INSERT : 0));
	AtEOXact_GUC(false, save_nestlevel);
	SetUserIdAndSecContext(save_userid, save_sec_context);
	td = DatumGetHeapTupleHeader(row);
	/* An insert of only the columns given (AW_FLAG_GIVEN) recorded them. */
	if (kind != AW_KIND_INSERT || !set_null)
	{
		int			natts = RelationGetDescr(rel)->natts;

		cs = palloc0(AW_COLSETS_SIZE(natts, natts));
		cs->nkeys = aw_names_attnums(rel, keycols, keys_null, cs->attnums);
		cs->nset = aw_names_attnums(rel, setcols, set_null, cs->attnums + cs->nkeys);
		cs_len = MAXALIGN(AW_COLSETS_SIZE(cs->nkeys, cs->nset));
	}
	/* The extra bytes: column sets (MAXALIGNed), then the dead letter id. */
	extra = palloc0(cs_len + sizeof(int64));
	if (cs != NULL)
		memcpy(extra, cs, AW_COLSETS_SIZE(cs->nkeys, cs->nset));
	memcpy(extra + cs_len, &id, sizeof(int64));
	w.relid = relid;
	w.roleid = roleid;
	w.fingerprint = aw_target_fingerprint(t);
	w.kind = kind;
	w.flags = AW_FLAG_RETRY;

	/*
	 * A write of only the columns its role may insert into (AW_FLAG_GIVEN)
	 * stays one: an insert recorded its columns; an upsert or increment gives
	 * its key and set columns when its role may not insert all.
	 */
	if (kind == AW_KIND_INSERT && cs != NULL)
		w.flags |= AW_FLAG_GIVEN;
	else if ((kind == AW_KIND_UPSERT || kind == AW_KIND_INCREMENT) &&
			 !aw_role_may_insert_all(rel, roleid))
		w.flags |= AW_FLAG_GIVEN;
	else if (kind == AW_KIND_INSERT && aw_target_row_deferred(t, row))
		w.flags |= AW_FLAG_DEFERRED;
	w.payload = td;
	w.payload_len = HeapTupleHeaderGetDatumLength(td);
	w.extra = extra;
	w.extra_len = cs_len + sizeof(int64);
	if (!aw_submit_now(1, &w, &write_id))
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
	if (SPI_execute_with_args("SELECT id, target, payload, role, operation, key_columns, set_columns "
							  "FROM asyncwrite.dead_letters WHERE $1 IS NULL OR id = $1 ORDER BY id",
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
		uint8		kind = aw_kind_from_name(TextDatumGetCString(SPI_getbinval(tup, desc, 5, &isnull)));
		bool		keys_null;
		bool		set_null;
		Datum		keycols = SPI_getbinval(tup, desc, 6, &keys_null);
		Datum		setcols = SPI_getbinval(tup, desc, 7, &set_null);

		if (roleid != userid && !is_super)
		{
			if (!all)
				ereport(ERROR,
						(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
						 errmsg("permission denied to retry dead letter " INT64_FORMAT, id),
						 errdetail("Only the role that queued the write, or a superuser, may retry it.")));
			continue;
		}
		if (aw_retry_one(id, relid, payload, payload_null, roleid, kind,
						 keycols, keys_null, setcols, set_null))
			queued++;
	}
	SPI_finish();
	PG_RETURN_INT64(queued);
}
