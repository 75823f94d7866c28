/*-------------------------------------------------------------------------
 *
 * compat.h
 *		What differs between the PostgreSQL majors asyncwrite builds
 *		against (15 to 18), as one name each.  The apply layer's
 *		COPY-style insert keeps its executor differences inline
 *		(apply_bulk.c), where they are clearer.
 *
 *-------------------------------------------------------------------------
 */
#ifndef AW_COMPAT_H
#define AW_COMPAT_H

#include "common/jsonapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "replication/message.h"
#include "replication/slot.h"
#include "storage/proc.h"
#include "utils/acl.h"
#include "utils/guc.h"
#include "utils/rel.h"
#include "utils/relcache.h"

#if PG_VERSION_NUM >= 160000
#include "catalog/pg_database.h"
#include "catalog/pg_namespace.h"
#endif
#if PG_VERSION_NUM >= 170000
#include "storage/procnumber.h"
#else
#include "storage/backendid.h"
#endif

/*
 * The JSON parser's semantic actions return an error code from 16 on (a
 * callback's own errors are raised with ereport here); its lexer of a
 * string takes a context to fill (NULL: a new one) from 17 on.
 */
#if PG_VERSION_NUM >= 160000
#define AW_JSON_ACTION		JsonParseErrorType
#define AW_JSON_ACTION_DONE	JSON_SUCCESS
#else
#define AW_JSON_ACTION		void
#define AW_JSON_ACTION_DONE
#endif

/* A lexer over len bytes of JSON text, not de-escaping strings. */
static inline JsonLexContext *
aw_json_lexer(char *json, int len)
{
#if PG_VERSION_NUM >= 170000
	return makeJsonLexContextCstringLen(NULL, json, len, GetDatabaseEncoding(), false);
#else
	return makeJsonLexContextCstringLen(json, len, GetDatabaseEncoding(), false);
#endif
}

/* This backend's slot among the first MaxBackends processes, from 0. */
#if PG_VERSION_NUM >= 170000
#define AW_MY_PROC_INDEX	((int) MyProcNumber)
#else
#define AW_MY_PROC_INDEX	((int) MyBackendId - 1)
#endif

/* This backend's local transaction id. */
#if PG_VERSION_NUM >= 170000
#define AW_MY_LXID	(MyProc->vxid.lxid)
#else
#define AW_MY_LXID	(MyProc->lxid)
#endif

/* USAGE and ownership checks (object_aclcheck and friends since 16). */
static inline AclResult
aw_namespace_aclcheck(Oid nspid, Oid roleid, AclMode mode)
{
#if PG_VERSION_NUM >= 160000
	return object_aclcheck(NamespaceRelationId, nspid, roleid, mode);
#else
	return pg_namespace_aclcheck(nspid, roleid, mode);
#endif
}

static inline bool
aw_database_ownercheck(Oid dboid, Oid roleid)
{
#if PG_VERSION_NUM >= 160000
	return object_ownercheck(DatabaseRelationId, dboid, roleid);
#else
	return pg_database_ownercheck(dboid, roleid);
#endif
}

/* The primary key index of rel, a deferrable one left out (18's default). */
static inline Oid
aw_primary_key_index(Relation rel)
{
#if PG_VERSION_NUM >= 180000
	return RelationGetPrimaryKeyIndex(rel, false);
#else
	return RelationGetPrimaryKeyIndex(rel);
#endif
}

/* Create a persistent physical replication slot, acquired by us. */
static inline void
aw_slot_create(const char *name)
{
#if PG_VERSION_NUM >= 170000
	ReplicationSlotCreate(name, false, RS_PERSISTENT, false, false, false);
#else
	ReplicationSlotCreate(name, false, RS_PERSISTENT, false);
#endif
}

/* Acquire a replication slot, failing if another process has it. */
static inline void
aw_slot_acquire(const char *name)
{
#if PG_VERSION_NUM >= 180000
	ReplicationSlotAcquire(name, true, false);
#else
	ReplicationSlotAcquire(name, true);
#endif
}

/*
 * Whether a slot was invalidated (max_slot_wal_keep_size, or 18's
 * idle_replication_slot_timeout): the WAL it kept may be gone.  The caller
 * holds the slot's mutex.
 */
static inline bool
aw_slot_invalidated(ReplicationSlot *s)
{
#if PG_VERSION_NUM >= 160000
	return s->data.invalidated != RS_INVAL_NONE;
#else
	return !XLogRecPtrIsInvalid(s->data.invalidated_at) &&
		XLogRecPtrIsInvalid(s->data.restart_lsn);
#endif
}

/* Log a logical message; its flush, when wanted, is the caller's. */
static inline XLogRecPtr
aw_log_message(const char *prefix, const char *data, Size len,
			   bool transactional)
{
#if PG_VERSION_NUM >= 170000
	return LogLogicalMessage(prefix, data, len, transactional, false);
#else
	return LogLogicalMessage(prefix, data, len, transactional);
#endif
}

#endif							/* AW_COMPAT_H */
