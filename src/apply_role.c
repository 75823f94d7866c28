/*-------------------------------------------------------------------------
 *
 * apply_role.c
 *		The identity a run of writes is applied with: that of a session of
 *		the role that queued them.  In the worker, session_user,
 *		current_user and is_superuser are the role's, and the search_path
 *		is the one a new session of the role in this database would get
 *		(ALTER ROLE ... IN DATABASE, ALTER ROLE, ALTER DATABASE, else the
 *		server's default), so that triggers, defaults and row-level security
 *		policies see what they would see for the role's own statement.  A
 *		synchronous write in the caller keeps the caller's session.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/indexing.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_db_role_setting.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "apply.h"
#include "launcher.h"

/* The server's search_path: postgresql.conf's, else the command line's. */
static char *aw_server_search_path = NULL;

/* search_path before the worker connected (file, command line or built-in). */
static char *aw_startup_search_path = NULL;
static bool aw_startup_path_from_file = false;

/* The search_path of one role, valid in one transaction. */
static Oid	aw_path_role = InvalidOid;
static LocalTransactionId aw_path_lxid = InvalidLocalTransactionId;
static char *aw_path_value = NULL;

/* Whether the session user was switched to a queuing role. */
static bool aw_session_switched = false;
static Oid	aw_own_session_user = InvalidOid;

/*
 * Note the search_path the worker inherited from the postmaster, before
 * the database's and its own role's settings are applied.
 */
void
aw_role_note_startup_defaults(void)
{
	aw_startup_search_path = MemoryContextStrdup(TopMemoryContext,
												 GetConfigOption("search_path", false, false));
}

/*
 * Read the server's default search_path again (at the worker's start, in a
 * transaction, and after each configuration reload): postgresql.conf's
 * (postgresql.auto.conf included) as pg_file_settings reads it now, else
 * what the worker started with if that did not come from the file, else
 * the built-in default.
 */
void
aw_role_reload_defaults(void)
{
	char	   *file_value = NULL;
	bool		started_xact = !IsTransactionState();

	if (started_xact)
	{
		StartTransactionCommand();
		PushActiveSnapshot(GetTransactionSnapshot());
	}
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute("SELECT setting FROM pg_catalog.pg_file_settings "
					"WHERE name = 'search_path' AND applied AND error IS NULL",
					true, 1) == SPI_OK_SELECT && SPI_processed == 1)
		file_value = SPI_getvalue(SPI_tuptable->vals[0],
								  SPI_tuptable->tupdesc, 1);
	if (file_value != NULL)
		file_value = MemoryContextStrdup(TopMemoryContext, file_value);
	SPI_finish();
	if (started_xact)
	{
		PopActiveSnapshot();
		CommitTransactionCommand();
	}

	if (aw_server_search_path == NULL)
		aw_startup_path_from_file = (file_value != NULL);
	else
		pfree(aw_server_search_path);
	if (file_value != NULL)
		aw_server_search_path = file_value;
	else if (!aw_startup_path_from_file && aw_startup_search_path != NULL)
		aw_server_search_path = MemoryContextStrdup(TopMemoryContext,
													aw_startup_search_path);
	else
		aw_server_search_path = MemoryContextStrdup(TopMemoryContext,
													"\"$user\", public");
	aw_path_lxid = InvalidLocalTransactionId;
}

/* The search_path in one pg_db_role_setting row, or NULL. */
static char *
aw_setting_search_path(Relation relsetting, Oid databaseid, Oid roleid)
{
	ScanKeyData keys[2];
	SysScanDesc scan;
	HeapTuple	tup;
	char	   *result = NULL;

	ScanKeyInit(&keys[0], Anum_pg_db_role_setting_setdatabase,
				BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(databaseid));
	ScanKeyInit(&keys[1], Anum_pg_db_role_setting_setrole,
				BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(roleid));
	scan = systable_beginscan(relsetting, DbRoleSettingDatidRolidIndexId, true,
							  NULL, 2, keys);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
	{
		bool		isnull;
		Datum		d = heap_getattr(tup, Anum_pg_db_role_setting_setconfig,
									 RelationGetDescr(relsetting), &isnull);
		Datum	   *elems;
		bool	   *nulls;
		int			n;

		if (!isnull)
		{
			deconstruct_array(DatumGetArrayTypeP(d), TEXTOID, -1, false,
							  TYPALIGN_INT, &elems, &nulls, &n);
			/* Later entries for the same name replace earlier ones. */
			for (int i = 0; i < n; i++)
			{
				char	   *name;
				char	   *value;

				if (nulls[i])
					continue;
				ParseLongOption(TextDatumGetCString(elems[i]), &name, &value);
				if (value != NULL && pg_strcasecmp(name, "search_path") == 0)
					result = value;
			}
		}
	}
	systable_endscan(scan);
	return result;
}

/*
 * The search_path a new session of roleid in this database would start
 * with: the most specific setting wins, as at connection start.
 */
static const char *
aw_role_search_path(Oid roleid)
{
	Relation	relsetting;
	char	   *path;

	if (aw_path_role == roleid && aw_path_lxid == MyProc->lxid &&
		aw_path_lxid != InvalidLocalTransactionId)
		return aw_path_value;
	if (aw_server_search_path == NULL)
		aw_role_reload_defaults();
	relsetting = table_open(DbRoleSettingRelationId, AccessShareLock);
	path = aw_setting_search_path(relsetting, MyDatabaseId, roleid);
	if (path == NULL)
		path = aw_setting_search_path(relsetting, InvalidOid, roleid);
	if (path == NULL)
		path = aw_setting_search_path(relsetting, MyDatabaseId, InvalidOid);
	table_close(relsetting, AccessShareLock);
	if (aw_path_value != NULL)
		pfree(aw_path_value);
	aw_path_value = MemoryContextStrdup(TopMemoryContext,
										path ? path : aw_server_search_path);
	aw_path_role = roleid;
	aw_path_lxid = MyProc->lxid;
	return aw_path_value;
}

/*
 * Become the role that queued a run of writes.  In the worker: the
 * session of that role (session_user, current_user and is_superuser its
 * own), with its search_path, in a security-restricted operation (no SET
 * ROLE, no temporary objects, so pg_temp is never searched) and a GUC nest
 * level, so that settings a trigger changes do not outlive the run: nothing
 * one role's writes do carries over to another role's.  A write whose role
 * was dropped fails.  A synchronous write in the caller behaves like an
 * INSERT.  An error inside is undone by the (sub)transaction abort and
 * aw_writer_reset().
 */
void
aw_become_writer(Oid roleid, AwWriterState *s)
{
	GetUserIdAndSecContext(&s->save_userid, &s->save_sec_context);
	s->save_nestlevel = -1;
	if (aw_is_worker)
	{
		/* Outermost: not a write a trigger of a run makes (that nests). */
		bool		outer = (s->save_sec_context & SECURITY_RESTRICTED_OPERATION) == 0;
		const char *path = NULL;

		if (outer && !SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(roleid)))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("role with OID %u does not exist", roleid),
					 errdetail("The role that queued the write was dropped before the write was applied.")));

		/*
		 * The role's search_path is read while still the worker's own role
		 * (pg_file_settings), and the session user changes only outside a
		 * security-restricted operation (SetSessionAuthorization asserts it):
		 * both first.
		 */
		if (outer)
		{
			path = aw_role_search_path(roleid);
			if (!aw_session_switched)
				aw_own_session_user = GetSessionUserId();
			SetSessionAuthorization(roleid, superuser_arg(roleid));
			aw_session_switched = true;
		}
		SetUserIdAndSecContext(roleid,
							   s->save_sec_context | SECURITY_LOCAL_USERID_CHANGE |
							   SECURITY_RESTRICTED_OPERATION);
		s->save_nestlevel = NewGUCNestLevel();
		if (outer)
			(void) set_config_option("search_path", path,
									 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
									 true, 0, false);
	}
	else if (roleid != s->save_userid)
		SetUserIdAndSecContext(roleid,
							   s->save_sec_context | SECURITY_LOCAL_USERID_CHANGE);
}

/*
 * Give the worker its own session back after a run (or a run's error), once
 * the security context was restored.
 */
void
aw_writer_reset(void)
{
	if (!aw_session_switched)
		return;
	SetSessionAuthorization(aw_own_session_user,
							superuser_arg(aw_own_session_user));
	aw_session_switched = false;
}

/* Return to the identity aw_become_writer() saved. */
void
aw_end_writer(AwWriterState *s)
{
	if (s->save_nestlevel >= 0)
		AtEOXact_GUC(false, s->save_nestlevel);
	SetUserIdAndSecContext(s->save_userid, s->save_sec_context);
	if (s->save_sec_context == 0)
		aw_writer_reset();
}
