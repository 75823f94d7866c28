/*-------------------------------------------------------------------------
 *
 * api.h
 *		The SQL layer: the functions of the asyncwrite schema (api_insert.c,
 *		api_keyed.c, api_control.c, api_retry.c) and the utility hook
 *		(api_ddl.c).  Nothing below it uses it.
 *
 *-------------------------------------------------------------------------
 */
#ifndef AW_API_H
#define AW_API_H

#include "convert.h"
#include "queue.h"

#include "fmgr.h"

/* Refuse a NULL argument with a clear error. */
static inline void
aw_require_arg(FunctionCallInfo fcinfo, int argno, const char *what)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", what)));
}

/* Whether a write is transactional: the call's argument, else the GUC. */
static inline bool
aw_call_transactional(FunctionCallInfo fcinfo, int argno)
{
	if (PG_NARGS() > argno && !PG_ARGISNULL(argno))
		return PG_GETARG_BOOL(argno);
	return aw_transactional;
}

/* AW_FLAG_URGENT when a write is urgent: the call's argument, else the GUC. */
static inline uint32
aw_call_urgent(FunctionCallInfo fcinfo, int argno)
{
	bool		urgent = aw_urgent;

	if (PG_NARGS() > argno && !PG_ARGISNULL(argno))
		urgent = PG_GETARG_BOOL(argno);
	return urgent ? AW_FLAG_URGENT : 0;
}

/* api_insert.c */
extern Datum aw_arg_jsonb(FunctionCallInfo fcinfo, int argno);

/* api_ddl.c */
extern void aw_ddl_install_hook(void);

#endif							/* AW_API_H */
