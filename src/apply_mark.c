/*-------------------------------------------------------------------------
 *
 * apply_mark.c
 *		The applied mark of durable writes: this cluster's and database's
 *		row of asyncwrite.applied_mark, updated in every transaction of the
 *		worker that applies queued writes or records them as failed, so that
 *		the rows and the mark commit together.  After a restart, writes read
 *		back from the WAL are queued again only above it (wal_recover.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xlog.h"
#include "miscadmin.h"
#include "utils/snapmgr.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/pg_lsn.h"

#include "apply.h"

/* The kept UPDATE of the mark, and the table it was planned for. */
static SPIPlanPtr aw_mark_plan = NULL;
static Oid	aw_mark_plan_relid = InvalidOid;

/*
 * The name of the mark table (in the extension's schema, asyncwrite, as
 * for the other tables of the extension), or NULL when it does not exist.
 */
static const char *
aw_mark_table(Oid *relid)
{
	Oid			nspid = get_namespace_oid("asyncwrite", true);

	*relid = OidIsValid(nspid) ? get_relname_relid("applied_mark", nspid) : InvalidOid;
	return OidIsValid(*relid) ? "asyncwrite.applied_mark" : NULL;
}

/* Whether this database's extension has the applied mark (version 1.1). */
bool
aw_mark_exists(void)
{
	Oid			relid;

	return aw_mark_table(&relid) != NULL;
}

/*
 * The mark of this cluster and database, or 0, read in the caller's
 * transaction by any role (a producer: the table is not readable by
 * PUBLIC, and the value is only compared with write ids).
 */
uint64
aw_mark_peek(void)
{
	Oid			relid;
	Relation	rel;
	SysScanDesc scan;
	HeapTuple	tup;
	uint64		mark = 0;
	int64		sysid = (int64) GetSystemIdentifier();

	if (aw_mark_table(&relid) == NULL)
		return 0;
	rel = table_open(relid, AccessShareLock);
	scan = systable_beginscan(rel, InvalidOid, false, GetLatestSnapshot(), 0, NULL);
	while ((tup = systable_getnext(scan)) != NULL)
	{
		bool		isnull[3];
		Datum		v[3];

		for (int i = 0; i < 3; i++)
			v[i] = heap_getattr(tup, i + 1, RelationGetDescr(rel), &isnull[i]);
		if (!isnull[0] && !isnull[1] && !isnull[2] &&
			DatumGetInt64(v[0]) == sysid && DatumGetObjectId(v[1]) == MyDatabaseId)
			mark = (uint64) DatumGetInt64(v[2]);
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return mark;
}

/*
 * Read the mark, in a transaction with SPI connected: every durable write
 * up to *applied_id is done, and none logged before *replay_from is needed.
 * No row for this cluster and database means no batch committed here yet
 * (both 0).  Returns false (both 0) when the table does not exist.
 */
bool
aw_mark_read(uint64 *applied_id, XLogRecPtr *replay_from)
{
	Oid			relid;
	const char *table = aw_mark_table(&relid);
	Oid			types[2] = {INT8OID, OIDOID};
	Datum		values[2];
	bool		isnull;

	*applied_id = 0;
	*replay_from = InvalidXLogRecPtr;
	if (table == NULL)
		return false;
	values[0] = Int64GetDatum((int64) GetSystemIdentifier());
	values[1] = ObjectIdGetDatum(MyDatabaseId);
	if (SPI_execute_with_args(psprintf("SELECT applied_write_id, replay_from_lsn FROM %s "
									   "WHERE system_identifier = $1 AND database = $2",
									   table), 2, types, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read the asyncwrite applied mark");
	if (SPI_processed == 0)
		return true;
	*applied_id = (uint64) DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
													   SPI_tuptable->tupdesc,
													   1, &isnull));
	*replay_from = DatumGetLSN(SPI_getbinval(SPI_tuptable->vals[0],
											 SPI_tuptable->tupdesc,
											 2, &isnull));
	return true;
}

/*
 * Set the mark to applied_id and replay_from (never lower; replay_from may
 * be InvalidXLogRecPtr), in the caller's transaction with SPI connected, as
 * the worker's own role.
 */
void
aw_mark_write(uint64 applied_id, XLogRecPtr replay_from)
{
	Oid			relid;
	const char *table = aw_mark_table(&relid);
	Datum		values[4];

	if (table == NULL)
		return;
	if (aw_mark_plan == NULL || aw_mark_plan_relid != relid)
	{
		Oid			types[4] = {INT8OID, PG_LSNOID, INT8OID, OIDOID};
		SPIPlanPtr	plan;

		plan = SPI_prepare(psprintf("INSERT INTO %s AS m (system_identifier, database, applied_write_id, replay_from_lsn) "
									"VALUES ($3, $4, $1, $2) ON CONFLICT (system_identifier, database) DO UPDATE "
									"SET applied_write_id = GREATEST(m.applied_write_id, $1), "
									"replay_from_lsn = GREATEST(m.replay_from_lsn, $2)",
									table), 4, types);
		if (plan == NULL)
			elog(ERROR, "could not prepare the update of the asyncwrite applied mark");
		if (SPI_keepplan(plan) != 0)
			elog(ERROR, "could not keep the update of the asyncwrite applied mark");
		if (aw_mark_plan != NULL)
			SPI_freeplan(aw_mark_plan);
		aw_mark_plan = plan;
		aw_mark_plan_relid = relid;
	}
	values[0] = Int64GetDatum((int64) applied_id);
	values[1] = LSNGetDatum(replay_from);
	values[2] = Int64GetDatum((int64) GetSystemIdentifier());
	values[3] = ObjectIdGetDatum(MyDatabaseId);
	if (SPI_execute_plan(aw_mark_plan, values, NULL, false, 1) != SPI_OK_INSERT)
		elog(ERROR, "could not update the asyncwrite applied mark");
}
