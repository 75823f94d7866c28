/*-------------------------------------------------------------------------
 *
 * convert_defaults.c
 *		Column defaults an insert leaves to the worker: values drawn from a
 *		sequence (serial and identity columns).
 *
 * Calling nextval() in the caller assigns the caller's transaction an xid
 * (the sequence's WAL must be durable before its value is used), so every
 * commit that drew a value, about one in 32, waits for a WAL flush: most of
 * a queued insert's cost.  The worker draws the value instead, when it
 * applies the row, as the role that queued it; its batch commit flushes
 * WAL once for many rows.
 *
 * Only NOT NULL columns are deferred, so that NULL in the queued row is
 * unambiguous: the caller refuses an explicit NULL there (it could never be
 * inserted), marks the entry AW_FLAG_DEFERRED, and the worker fills the
 * NULLs of such entries.  The caller still checks that it may use the
 * sequence, so a write it could not make is refused at the call, not
 * recorded as failed later.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/transam.h"
#include "catalog/pg_class.h"
#include "executor/executor.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "rewrite/rewriteHandler.h"
#include "utils/acl.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "convert.h"

/* The defaults of one target that a run of inserts must fill. */
struct AwDeferredDefaults
{
	int			n;
	AttrNumber *attnums;
	ExprState **states;
	ExprContext *econtext;
};

/* check_functions_in_node callback: a function that may read a sequence. */
static bool
aw_may_read_sequence(Oid funcid, void *context)
{
	return funcid == F_CURRVAL || funcid == F_LASTVAL ||
		funcid >= FirstNormalObjectId;
}

/*
 * The sequence a column's default draws from (nextval() of a constant
 * sequence, or an identity), else InvalidOid.  *identity tells an identity
 * column, whose values an INSERT draws without a privilege check.
 */
static Oid
aw_sequence_of_default(Relation rel, AttrNumber attnum, bool *identity)
{
	Form_pg_attribute att = TupleDescAttr(RelationGetDescr(rel), attnum - 1);
	Node	   *expr;

	*identity = att->attidentity != '\0';
	if (att->attisdropped || att->attgenerated ||
		(!att->atthasdef && att->attidentity == '\0'))
		return InvalidOid;
	expr = build_column_default(rel, attnum);
	if (expr == NULL)
		return InvalidOid;
	expr = strip_implicit_coercions(expr);
	if (IsA(expr, NextValueExpr))
		return ((NextValueExpr *) expr)->seqid;
	if (IsA(expr, FuncExpr) && ((FuncExpr *) expr)->funcid == F_NEXTVAL)
	{
		Node	   *arg = linitial(((FuncExpr *) expr)->args);

		if (IsA(arg, Const) && !((Const *) arg)->constisnull)
			return DatumGetObjectId(((Const *) arg)->constvalue);
	}
	return InvalidOid;
}

/* Whether an expression calls a function that may read a sequence. */
static bool
aw_reads_sequence_walker(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (check_functions_in_node(node, aw_may_read_sequence, context))
		return true;
	return expression_tree_walker(node, aw_reads_sequence_walker, context);
}

/*
 * Whether an insert into rel may leave its sequence defaults to the worker:
 * not if a BEFORE ROW trigger may see or set those columns, nor if another
 * column's default may read the sequence (currval(), lastval(), or a
 * function of the database's own) and so expects the value drawn first,
 * nor if a nullable column draws from a sequence (an explicit NULL there
 * would look like a value left to the worker).
 */
static bool
aw_defaults_deferrable(Relation rel)
{
	TupleDesc	desc = RelationGetDescr(rel);

	if (rel->trigdesc != NULL && rel->trigdesc->trig_insert_before_row)
		return false;
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		Node	   *expr;
		bool		identity;

		if (att->attisdropped || att->attgenerated)
			continue;
		if (!att->attnotnull &&
			OidIsValid(aw_sequence_of_default(rel, i + 1, &identity)))
			return false;
		if (!att->atthasdef)
			continue;
		expr = build_column_default(rel, i + 1);
		if (aw_reads_sequence_walker(expr, NULL))
			return false;
	}
	return true;
}

/*
 * The sequence a column's default draws from, if an insert leaves that
 * default to the worker (a NOT NULL column of a table where that is safe:
 * aw_defaults_deferrable); else InvalidOid.
 */
Oid
aw_default_sequence(Relation rel, AttrNumber attnum, bool *identity)
{
	Oid			seqid = aw_sequence_of_default(rel, attnum, identity);

	if (!OidIsValid(seqid) ||
		!TupleDescAttr(RelationGetDescr(rel), attnum - 1)->attnotnull ||
		!aw_defaults_deferrable(rel))
		return InvalidOid;
	return seqid;
}

/*
 * Check, in the caller, that it may draw from a deferred default's sequence,
 * as nextval() would when the worker draws the value for it.
 */
void
aw_check_default_sequence(Oid seqid)
{
	if (pg_class_aclcheck(seqid, GetUserId(), ACL_USAGE | ACL_UPDATE) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for sequence %s", get_rel_name(seqid))));
}

/*
 * The defaults to draw for a run of rows queued with AW_FLAG_DEFERRED, ready
 * to evaluate in the current memory context, or NULL when rel has none.
 * Those rows hold NULL only in the columns that were left to the worker,
 * so every column whose default still draws from a sequence is taken,
 * whatever DDL changed its NOT NULL or the table's triggers since; a column
 * whose default was dropped stays NULL and fails as it would for INSERT.
 */
AwDeferredDefaults *
aw_deferred_defaults(Relation rel)
{
	TupleDesc	desc = RelationGetDescr(rel);
	AwDeferredDefaults *d = NULL;

	for (int i = 0; i < desc->natts; i++)
	{
		Expr	   *expr;
		bool		identity;

		if (!OidIsValid(aw_sequence_of_default(rel, i + 1, &identity)))
			continue;
		if (d == NULL)
		{
			d = palloc0(sizeof(AwDeferredDefaults));
			d->attnums = palloc(sizeof(AttrNumber) * desc->natts);
			d->states = palloc(sizeof(ExprState *) * desc->natts);
			d->econtext = CreateStandaloneExprContext();
		}
		expr = expression_planner((Expr *) build_column_default(rel, i + 1));
		d->attnums[d->n] = i + 1;
		d->states[d->n] = ExecInitExpr(expr, NULL);
		d->n++;
	}
	return d;
}

/*
 * Fill the NULL deferred columns of a row (values/isnull by attribute
 * index).  Returns whether any was filled.  The values are by-value types
 * (sequence values and their integer casts) or live in the ExprContext,
 * which lives as long as the run.
 */
bool
aw_deferred_fill(AwDeferredDefaults *d, Datum *values, bool *isnull)
{
	bool		filled = false;

	for (int i = 0; d != NULL && i < d->n; i++)
	{
		int			k = d->attnums[i] - 1;

		if (!isnull[k])
			continue;
		values[k] = ExecEvalExpr(d->states[i], d->econtext, &isnull[k]);
		filled = true;
	}
	return filled;
}

/*
 * A queued row with its deferred columns filled: the row itself when none
 * was NULL, else a new composite datum of rel's row type.
 */
Datum
aw_deferred_fill_row(AwDeferredDefaults *d, Relation rel, Datum row)
{
	TupleDesc	desc = RelationGetDescr(rel);
	HeapTupleHeader td = DatumGetHeapTupleHeader(row);
	HeapTupleData tuple;
	Datum	   *values;
	bool	   *isnull;
	HeapTuple	filled;

	if (d == NULL)
		return row;
	aw_tuple_over(td, &tuple);
	values = palloc(sizeof(Datum) * desc->natts);
	isnull = palloc(sizeof(bool) * desc->natts);
	heap_deform_tuple(&tuple, desc, values, isnull);
	if (!aw_deferred_fill(d, values, isnull))
		return row;
	filled = heap_form_tuple(desc, values, isnull);
	return HeapTupleHeaderGetDatum(filled->t_data);
}
