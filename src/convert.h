/*-------------------------------------------------------------------------
 *
 * convert.h
 *		The convert layer: a write's target table and the row it gets.
 *		convert.c turns a jsonb object or a composite value into a row of
 *		the target (the per-backend target cache, the row-layout
 *		fingerprint); convert_target.c opens a target and checks what may be
 *		written to it; convert_defaults.c handles the sequence defaults the
 *		worker draws.  It knows nothing of the layers above it.
 *
 *-------------------------------------------------------------------------
 */
#ifndef AW_CONVERT_H
#define AW_CONVERT_H

#include "asyncwrite.h"

#include "access/attnum.h"
#include "access/htup_details.h"
#include "access/tupdesc.h"
#include "utils/acl.h"
#include "utils/relcache.h"

/* A heap tuple over a composite datum (a queued row), for deforming it. */
static inline void
aw_tuple_over(HeapTupleHeader td, HeapTupleData *tuple)
{
	tuple->t_len = HeapTupleHeaderGetDatumLength(td);
	ItemPointerSetInvalid(&tuple->t_self);
	tuple->t_tableOid = InvalidOid;
	tuple->t_data = td;
}

/*
 * Let a queued row be read with its table's row type as it is now.
 * Recent minor releases stamp a composite datum with its row type's
 * version and refuse one formed before an ALTER TABLE, even one that kept
 * the layout (the same type again, another collation, int to bigint and
 * back).  asyncwrite checks the layout itself before it reads a queued row
 * (aw_layout_compatible), so the row is made an unversioned datum, as one
 * formed before versions were stamped.
 */
static inline void
aw_row_unversion(HeapTupleHeader td)
{
	ItemPointerSetInvalid(&td->t_ctid);
	HeapTupleHeaderSetTypMod(td, -1);
}

/* convert.c: the target cache */
typedef struct AwTarget AwTarget;
extern AwTarget *aw_target_get(Relation rel);
extern uint32 aw_target_fingerprint(AwTarget *t);
extern bool aw_target_row_deferred(AwTarget *t, Datum row);
extern bool aw_target_has_domains(AwTarget *t);
extern void aw_target_check_domains(AwTarget *t, Relation rel, Datum row,
									const AttrNumber *attnums, int n,
									bool deferred);
extern bool aw_target_key_known(AwTarget *t, const AttrNumber *attnums,
								int nkeys, bool for_conflict);
extern void aw_target_key_remember(AwTarget *t, const AttrNumber *attnums,
								   int nkeys, bool for_conflict);
extern uint32 aw_tupdesc_fingerprint(TupleDesc desc);
extern uint32 aw_tupdesc_fingerprint_prefix(TupleDesc desc, int natts);

/* convert.c: rows */
#define AW_CONVERT_RESTORING	0x01	/* a dead letter's payload */
#define AW_CONVERT_NO_DEFAULTS	0x02	/* columns not given stay NULL */
#define AW_CONVERT_INSERT		0x04	/* the row is inserted as is */
#define AW_CONVERT_GIVEN_ONLY	0x08	/* no defaults now: columns not given
										 * take theirs when applied */
#define AW_CONVERT_EXTRA_FIELDS	0x10	/* a composite's fields the target
										 * lacks are left out */
extern Datum aw_row_from_jsonb(Relation rel, AwTarget *t, Datum jsonb,
							   int options);
extern Datum aw_row_from_jsonb_ext(Relation rel, AwTarget *t, Datum jsonb,
								   int options, bool **given_out);
extern Datum aw_row_from_record(Relation rel, AwTarget *t, Datum rec,
								bool ignore_unknown, const char *op_column,
								const char *op_value, int options,
								bool **given_out);

/* convert_target.c */
extern Relation aw_open_target(Oid relid);
extern void aw_check_insert_privileges(Relation rel);
extern bool aw_may_insert_all(Relation rel);
extern bool aw_role_may_insert_all(Relation rel, Oid userid);
extern void aw_check_column_privilege(Relation rel, AclMode mode,
									  const AttrNumber *attnums, int n);
extern int	aw_given_attnums(const bool *given, int natts, AttrNumber *out);
extern void aw_check_schema_usage(Relation rel);
extern bool aw_attnum_in(const AttrNumber *attnums, int n, AttrNumber attnum);
extern void aw_refuse_keyed_foreign(Relation rel, const char *fname);
extern bool aw_find_key_index(Relation rel, const AttrNumber *keys, int nkeys,
							  bool for_conflict, Oid *ops);

/* convert_defaults.c */
typedef struct AwDeferredDefaults AwDeferredDefaults;
extern Oid	aw_default_sequence(Relation rel, AttrNumber attnum, bool *identity);
extern void aw_check_default_sequence(Oid seqid);
extern AwDeferredDefaults *aw_deferred_defaults(Relation rel);
extern bool aw_deferred_fill(AwDeferredDefaults *d, Datum *values, bool *isnull);
extern Datum aw_deferred_fill_row(AwDeferredDefaults *d, Relation rel, Datum row);

#endif							/* AW_CONVERT_H */
