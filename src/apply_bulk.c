/*-------------------------------------------------------------------------
 *
 * apply_bulk.c
 *		Apply a run of queued inserts the way COPY FROM does: rows go to the
 *		table in groups through table_multi_insert, then each gets its index
 *		entries and its AFTER ROW triggers; statement triggers fire once per
 *		run, CHECK and NOT NULL constraints, stored generated columns and
 *		the partition constraint of a partition are enforced per row, and
 *		sequence defaults left to the worker are drawn
 *		(convert_defaults.c).
 *
 * Like COPY, this skips the rewriter and the planner, so it is used only
 * where it behaves exactly as the INSERT it replaces: a plain table with no
 * rules, no BEFORE or INSTEAD OF row triggers and no row-level security
 * applying to the writing role.  Everything else (partitioned and foreign
 * tables, policies, BEFORE ROW triggers) goes through the INSERT statement
 * of apply_plan.c.  The caller has already switched to the role that queued the
 * writes; its INSERT privileges are checked here as the executor would.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/sysattr.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/nodeModifyTable.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "tcop/utility.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"

#include "apply.h"

/* Rows handed to table_multi_insert at once, as COPY's buffer holds. */
#define AW_BULK_GROUP	1000

/*
 * Whether inserts into rel may take the bulk path for the current role:
 * only when it would do exactly what an INSERT of the rows does.
 */
bool
aw_bulk_insert_usable(Relation rel)
{
	TriggerDesc *trigdesc = rel->trigdesc;

	if (rel->rd_rel->relkind != RELKIND_RELATION)
		return false;			/* partition routing, foreign tables */
	if (rel->rd_rules != NULL)
		return false;			/* rules rewrite an INSERT */
	if (trigdesc != NULL &&
		(trigdesc->trig_insert_before_row || trigdesc->trig_insert_instead_row))
		return false;			/* may change or drop each row */
	return check_enable_rls(RelationGetRelid(rel), InvalidOid, false) != RLS_ENABLED;
}

/*
 * The range table entry of an INSERT into every stored column of rel, and
 * (16 and later) its permission info in *perminfos.
 */
static RangeTblEntry *
aw_bulk_rte(Relation rel, Oid roleid, List **perminfos)
{
	RangeTblEntry *rte = makeNode(RangeTblEntry);
	TupleDesc	desc = RelationGetDescr(rel);
	Bitmapset  *cols = NULL;

#if PG_VERSION_NUM >= 160000
	RTEPermissionInfo *perminfo = makeNode(RTEPermissionInfo);
#endif

	rte->rtekind = RTE_RELATION;
	rte->relid = RelationGetRelid(rel);
	rte->relkind = rel->rd_rel->relkind;
	rte->rellockmode = RowExclusiveLock;
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped || att->attgenerated)
			continue;
		cols = bms_add_member(cols, att->attnum - FirstLowInvalidHeapAttributeNumber);
	}
#if PG_VERSION_NUM >= 160000
	perminfo->relid = rte->relid;
	perminfo->inh = false;
	perminfo->requiredPerms = ACL_INSERT;
	perminfo->checkAsUser = roleid;
	perminfo->insertedCols = cols;
	rte->perminfoindex = 1;
	*perminfos = list_make1(perminfo);
#else
	rte->requiredPerms = ACL_INSERT;
	rte->checkAsUser = roleid;
	rte->insertedCols = cols;
	*perminfos = NIL;
#endif
	return rte;
}

/*
 * Insert one group of filled slots, then give each its index entries and
 * its AFTER ROW triggers, as CopyMultiInsertBufferFlush does.
 */
static void
aw_bulk_flush(EState *estate, ResultRelInfo *rri, TupleTableSlot **slots,
			  int n, CommandId cid, TransitionCaptureState *tcs)
{
	MemoryContext oldcontext;
	TriggerDesc *trigdesc = rri->ri_TrigDesc;
	bool		after_row = trigdesc != NULL &&
	(trigdesc->trig_insert_after_row || trigdesc->trig_insert_new_table);

	/*
	 * No bulk-insert buffer strategy (NULL): COPY's ring of a few buffers
	 * would make the worker write out and evict the pages it just filled,
	 * which readers of a busy table are likely to want next.
	 */
	oldcontext = MemoryContextSwitchTo(GetPerTupleMemoryContext(estate));
	table_multi_insert(rri->ri_RelationDesc, slots, n, cid, 0, NULL);

	/* Still in the per-tuple memory, reset after each row. */
	for (int i = 0; i < n; i++)
	{
		List	   *recheck = NIL;

		if (rri->ri_NumIndices > 0)
#if PG_VERSION_NUM >= 160000
			recheck = ExecInsertIndexTuples(rri, slots[i], estate, false, false,
											NULL, NIL, false);
#else
			recheck = ExecInsertIndexTuples(rri, slots[i], estate, false, false,
											NULL, NIL);
#endif
		if (after_row || recheck != NIL)
			ExecARInsertTriggers(estate, rri, slots[i], recheck, tcs);
		list_free(recheck);
		ExecClearTuple(slots[i]);
		ResetPerTupleExprContext(estate);
	}
	MemoryContextSwitchTo(oldcontext);
}

/*
 * Insert rows[0..n) (one target, role and layout, checked by the caller
 * with aw_layout_compatible) into rel, opened with RowExclusiveLock.
 */
void
aw_bulk_insert(Relation rel, AwApplyRow *rows, int n)
{
	TupleDesc	desc = RelationGetDescr(rel);
	List	   *perminfos;
	RangeTblEntry *rte = aw_bulk_rte(rel, rows[0].hdr->roleid, &perminfos);
	List	   *rtable = list_make1(rte);
	EState	   *estate;
	ResultRelInfo *rri;
	TransitionCaptureState *tcs;
	TupleDesc	slot_desc;
	AwDeferredDefaults *deferred;
	TupleTableSlot **slots;
	CommandId	cid;
	int			nslots = Min(n, AW_BULK_GROUP);
	int			used = 0;
	bool		check_constraints = desc->constr != NULL;
	bool		generated = desc->constr != NULL && desc->constr->has_generated_stored;
	bool		partition = rel->rd_rel->relispartition;

	/* What the executor checks for an INSERT naming every column. */
	PreventCommandIfReadOnly("INSERT");
#if PG_VERSION_NUM >= 160000
	(void) ExecCheckPermissions(rtable, perminfos, true);
#else
	(void) ExecCheckRTPerms(rtable, true);
#endif

	/* A new command, as each SPI statement is: earlier runs are visible. */
	CommandCounterIncrement();
	PushActiveSnapshot(GetTransactionSnapshot());
	cid = GetCurrentCommandId(true);

	estate = CreateExecutorState();
	estate->es_output_cid = cid;
	estate->es_snapshot = GetActiveSnapshot();
#if PG_VERSION_NUM >= 180000
	ExecInitRangeTable(estate, rtable, perminfos, bms_make_singleton(1));
#elif PG_VERSION_NUM >= 160000
	ExecInitRangeTable(estate, rtable, perminfos);
#else
	ExecInitRangeTable(estate, rtable);
#endif
	rri = makeNode(ResultRelInfo);
	ExecInitResultRelation(estate, rri, 1);
	ExecOpenIndices(rri, false);

	/*
	 * After-trigger events queued by the rows fire at AfterTriggerEndQuery,
	 * like an INSERT's: the batch runs SET CONSTRAINTS ALL IMMEDIATE, so
	 * foreign keys and deferrable unique keys are checked inside the run.
	 */
	AfterTriggerBeginQuery();
	tcs = MakeTransitionCaptureState(rel->trigdesc, RelationGetRelid(rel), CMD_INSERT);
	ExecBSInsertTriggers(estate, rri);
	deferred = (rows[0].hdr->flags & AW_FLAG_DEFERRED) ?
		aw_deferred_defaults(rel) : NULL;

	/*
	 * The slots share an unpinned copy of the descriptor: a thousand pins of
	 * the relcache's would each be tracked by the resource owner.
	 */
	slot_desc = CreateTupleDescCopy(desc);
	slots = palloc(sizeof(TupleTableSlot *) * nslots);
	for (int i = 0; i < nslots; i++)
		slots[i] = ExecInitExtraTupleSlot(estate, slot_desc, table_slot_callbacks(rel));

	for (int i = 0; i < n; i++)
	{
		AwEntryHeader *hdr = rows[i].hdr;
		HeapTupleHeader td = (HeapTupleHeader) AW_ENTRY_PAYLOAD(hdr);
		HeapTupleData tuple;
		TupleTableSlot *slot = slots[used];

		/*
		 * The queued row has the table's columns, or a prefix of them when
		 * columns were added since: those read as their missing value.
		 */
		aw_tuple_over(td, &tuple);
		ExecClearTuple(slot);
		heap_deform_tuple(&tuple, desc, slot->tts_values, slot->tts_isnull);
		(void) aw_deferred_fill(deferred, slot->tts_values, slot->tts_isnull);
		ExecStoreVirtualTuple(slot);

		if (generated)
			ExecComputeStoredGenerated(rri, estate, slot, CMD_INSERT);
		if (check_constraints)
			ExecConstraints(rri, slot, estate);
		if (partition)
			ExecPartitionCheck(rri, slot, estate, true);
		ResetPerTupleExprContext(estate);

		if (++used == nslots)
		{
			aw_bulk_flush(estate, rri, slots, used, cid, tcs);
			used = 0;
		}
	}
	if (used > 0)
		aw_bulk_flush(estate, rri, slots, used, cid, tcs);

	ExecASInsertTriggers(estate, rri, tcs);
	AfterTriggerEndQuery(estate);

	ExecResetTupleTable(estate->es_tupleTable, false);
	ExecCloseResultRelations(estate);
	ExecCloseRangeTableRelations(estate);
	FreeExecutorState(estate);
	PopActiveSnapshot();
}
