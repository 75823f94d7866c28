/*-------------------------------------------------------------------------
 *
 * apply_role.c
 *		The identity a run of writes is applied with: that of a session of
 *		the role that queued them.  In the worker, session_user,
 *		current_user and is_superuser are the role's, and its settings are
 *		those a new session of the role in this database would get (ALTER
 *		ROLE ... IN DATABASE, ALTER ROLE, ALTER DATABASE, ALTER ROLE ALL,
 *		else the server's search_path), so that triggers, defaults and
 *		row-level security policies see what they would see for the role's
 *		own statement.  A
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
#include "utils/guc_tables.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "compat.h"
#include "apply.h"
#include "launcher.h"

/*
 * The server's search_path, what a new session starts with before database
 * and role settings: the postmaster's at the worker's start, then
 * postgresql.conf's (or the built-in default) at each reload, unless the
 * command line set it.
 */
static char *aw_server_search_path = NULL;
static bool aw_search_path_from_argv = false;

/*
 * The settings a new session of one role gets in this database, valid in
 * one transaction: the server's search_path, then ALTER ROLE ALL, ALTER
 * DATABASE, ALTER ROLE and ALTER ROLE ... IN DATABASE settings, each later
 * one overriding an earlier one of the same name (their precedence at
 * connection start).
 */
typedef struct AwRoleSetting
{
	char	   *name;
	char	   *value;
} AwRoleSetting;

static Oid	aw_settings_role = InvalidOid;
static LocalTransactionId aw_settings_lxid = InvalidLocalTransactionId;
static List *aw_settings = NIL;
static MemoryContext aw_settings_cxt = NULL;

/* Whether the session user was switched to a queuing role. */
static bool aw_session_switched = false;
static Oid	aw_own_session_user = InvalidOid;

/*
 * Note the search_path the worker inherited from the postmaster, before
 * the database's and its own role's settings are applied: what a new
 * session starts with.  Whether the command line set it (then a reload
 * never changes it).
 */
void
aw_role_note_startup_defaults(void)
{
	struct config_generic **vars;
	int			nvars;

#if PG_VERSION_NUM >= 160000
	vars = get_guc_variables(&nvars);
#else
	vars = get_guc_variables();
	nvars = GetNumConfigOptions();
#endif
	for (int i = 0; i < nvars; i++)
		if (strcmp(vars[i]->name, "search_path") == 0)
			aw_search_path_from_argv = (vars[i]->source == PGC_S_ARGV);
	aw_server_search_path = MemoryContextStrdup(TopMemoryContext,
												GetConfigOption("search_path", false, false));
}

/*
 * After a configuration reload (the postmaster reloaded too), read the
 * server's search_path again: postgresql.conf's (postgresql.auto.conf
 * included), else the built-in default; the command line's stays.
 */
void
aw_role_reload_defaults(void)
{
	char	   *file_value = NULL;
	bool		started_xact = !IsTransactionState();

	aw_settings_lxid = InvalidLocalTransactionId;
	if (aw_search_path_from_argv)
		return;
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
	if (aw_server_search_path != NULL)
		pfree(aw_server_search_path);
	aw_server_search_path = MemoryContextStrdup(TopMemoryContext,
												file_value ? file_value : "\"$user\", public");
	SPI_finish();
	if (started_xact)
	{
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
}

/*
 * Whether a role's setting is left out of its writes' session: the role
 * is already the queuing one, and the worker's own timeouts govern how
 * long a batch may wait (asyncwrite.apply_lock_timeout).
 */
static bool
aw_setting_skipped(const char *name)
{
	static const char *const skipped[] = {
		"role", "session_authorization", "statement_timeout", "lock_timeout",
		"idle_in_transaction_session_timeout", "idle_session_timeout",
		"transaction_timeout"
	};

	for (int i = 0; i < (int) lengthof(skipped); i++)
		if (pg_strcasecmp(name, skipped[i]) == 0)
			return true;
	return false;
}

/* Append the settings of one pg_db_role_setting row to aw_settings. */
static void
aw_read_settings(Relation relsetting, Oid databaseid, Oid roleid)
{
	ScanKeyData keys[2];
	SysScanDesc scan;
	HeapTuple	tup;

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
			for (int i = 0; i < n; i++)
			{
				AwRoleSetting *setting;
				char	   *name;
				char	   *value;

				if (nulls[i])
					continue;
				ParseLongOption(TextDatumGetCString(elems[i]), &name, &value);
				if (value == NULL || aw_setting_skipped(name))
					continue;
				setting = palloc(sizeof(AwRoleSetting));
				setting->name = name;
				setting->value = value;
				aw_settings = lappend(aw_settings, setting);
			}
		}
	}
	systable_endscan(scan);
}

/*
 * The settings a new session of roleid in this database would start with
 * (see AwRoleSetting), read once per transaction.
 */
static List *
aw_role_settings(Oid roleid)
{
	Relation	relsetting;
	MemoryContext old;
	AwRoleSetting *path;

	if (aw_settings_role == roleid && aw_settings_lxid == AW_MY_LXID &&
		aw_settings_lxid != InvalidLocalTransactionId)
		return aw_settings;
	if (aw_settings_cxt == NULL)
		aw_settings_cxt = AllocSetContextCreate(TopMemoryContext,
												"asyncwrite role settings",
												ALLOCSET_SMALL_SIZES);
	MemoryContextReset(aw_settings_cxt);
	old = MemoryContextSwitchTo(aw_settings_cxt);
	aw_settings = NIL;
	path = palloc(sizeof(AwRoleSetting));
	path->name = pstrdup("search_path");
	path->value = pstrdup(aw_server_search_path ? aw_server_search_path :
						  "\"$user\", public");
	aw_settings = lappend(aw_settings, path);
	relsetting = table_open(DbRoleSettingRelationId, AccessShareLock);
	aw_read_settings(relsetting, InvalidOid, InvalidOid);
	aw_read_settings(relsetting, MyDatabaseId, InvalidOid);
	aw_read_settings(relsetting, InvalidOid, roleid);
	aw_read_settings(relsetting, MyDatabaseId, roleid);
	table_close(relsetting, AccessShareLock);
	MemoryContextSwitchTo(old);
	aw_settings_role = roleid;
	aw_settings_lxid = AW_MY_LXID;
	return aw_settings;
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
		List	   *settings = NIL;
		ListCell   *lc;

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
			settings = aw_role_settings(roleid);
			if (!aw_session_switched)
				aw_own_session_user = GetSessionUserId();
			SetSessionAuthorization(roleid, superuser_arg(roleid));
			aw_session_switched = true;
		}
		SetUserIdAndSecContext(roleid,
							   s->save_sec_context | SECURITY_LOCAL_USERID_CHANGE |
							   SECURITY_RESTRICTED_OPERATION);
		s->save_nestlevel = NewGUCNestLevel();

		/*
		 * Settings stored by ALTER ROLE / DATABASE were checked when stored
		 * (a superuser-only one by a superuser), as at connection start.
		 */
		foreach(lc, settings)
		{
			AwRoleSetting *setting = (AwRoleSetting *) lfirst(lc);

			(void) set_config_option(setting->name, setting->value,
									 PGC_SUSET, PGC_S_SESSION, GUC_ACTION_SAVE,
									 true, DEBUG1, false);
		}
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
