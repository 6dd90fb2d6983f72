/*
 * localdb's stand-in for Supabase's supautils: only what hosted Supabase's `postgres` can observe
 * about extensions (see localdb/README.md).
 *
 * Loaded per session (session_preload_libraries = 'supautils', as on Supabase). Settings, all
 * readable by any role (SHOW, pg_settings):
 *   supautils.privileged_extensions     comma-separated extensions a non-superuser may manage
 *   supautils.superuser                 the role privileged extension commands run as
 *   supautils.privileged_role           the role Supabase privileges (postgres); informational here
 *   supautils.extensions_parameter_overrides  JSON {"ext": {"schema": "..."}}: forced schema
 *   supautils.privileged_extensions_custom_scripts_path  informational (localdb's after-create
 *                                       grants are event triggers, see sql/supabase_bootstrap.sql)
 *
 * ProcessUtility hook:
 *   CREATE EXTENSION: the schema override applies to every caller; a privileged extension is
 *     created as supautils.superuser (who then owns it), whoever asks; any other extension runs
 *     as the caller, so PostgreSQL's own rules (trusted, superuser) decide.
 *   ALTER EXTENSION (UPDATE, SET SCHEMA) and DROP EXTENSION of privileged extensions by a
 *     non-superuser run as supautils.superuser.
 */
#include "postgres.h"

#include "catalog/pg_authid.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/parsenodes.h"
#include "nodes/value.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/varlena.h"

/*
 * Built against the server headers of PostgreSQL 14 to 17 (tests/standins/test_other_majors.py compiles
 * it against each with -Werror). Where they differ for this file:
 *   ProcessUtility_hook_type  the same in 14-17: 14 added `bool readOnlyTree` (13 and older lack it)
 *   MarkGUCPrefixReserved     15+; 14 has its older name, EmitWarningsOnPlaceholders
 */
#if PG_VERSION_NUM < 140000
#error "localdb's supautils stand-in needs PostgreSQL 14 or newer (ProcessUtility_hook's readOnlyTree)"
#endif

PG_MODULE_MAGIC;

void _PG_init(void);

static char *privileged_extensions = NULL;
static char *superuser_name = NULL;
static char *privileged_role = NULL;
static char *parameter_overrides = NULL;
static char *custom_scripts_path = NULL;

static ProcessUtility_hook_type prev_hook = NULL;

static bool
is_privileged(const char *extname)
{
	List	   *names;
	ListCell   *lc;
	char	   *copy;

	if (privileged_extensions == NULL || extname == NULL)
		return false;
	copy = pstrdup(privileged_extensions);
	if (!SplitIdentifierString(copy, ',', &names))
		return false;
	foreach(lc, names)
	{
		if (strcmp((char *) lfirst(lc), extname) == 0)
			return true;
	}
	return false;
}

static bool
all_privileged(List *objects)
{
	ListCell   *lc;

	foreach(lc, objects)
	{
		if (!is_privileged(strVal(lfirst(lc))))
			return false;
	}
	return objects != NIL;
}

/* The schema supautils.extensions_parameter_overrides forces for `extname`, or NULL. */
static char *
override_schema(const char *extname)
{
	Datum		doc;
	Jsonb	   *jb;
	JsonbValue	key;
	JsonbValue *ext;
	JsonbValue *schema;

	if (parameter_overrides == NULL || parameter_overrides[0] == '\0')
		return NULL;
	doc = DirectFunctionCall1(jsonb_in, CStringGetDatum(parameter_overrides));
	jb = DatumGetJsonbP(doc);
	if (!JB_ROOT_IS_OBJECT(jb))
		return NULL;
	key.type = jbvString;
	key.val.string.val = (char *) extname;
	key.val.string.len = strlen(extname);
	ext = findJsonbValueFromContainer(&jb->root, JB_FOBJECT, &key);
	if (ext == NULL || ext->type != jbvBinary)
		return NULL;
	key.val.string.val = "schema";
	key.val.string.len = strlen("schema");
	schema = findJsonbValueFromContainer(ext->val.binary.data, JB_FOBJECT, &key);
	if (schema == NULL || schema->type != jbvString)
		return NULL;
	return pnstrdup(schema->val.string.val, schema->val.string.len);
}

/* Replace (or add) the statement's `schema` option. */
static void
apply_override(CreateExtensionStmt *stmt)
{
	char	   *schema = override_schema(stmt->extname);
	ListCell   *lc;

	if (schema == NULL)
		return;
	foreach(lc, stmt->options)
	{
		DefElem    *opt = (DefElem *) lfirst(lc);

		if (strcmp(opt->defname, "schema") == 0)
		{
			opt->arg = (Node *) makeString(schema);
			return;
		}
	}
	stmt->options = lappend(stmt->options, makeDefElem("schema", (Node *) makeString(schema), -1));
}

static void
run_next(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
		 ProcessUtilityContext context, ParamListInfo params, QueryEnvironment *queryEnv,
		 DestReceiver *dest, QueryCompletion *qc)
{
	if (prev_hook)
		prev_hook(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params, queryEnv,
								dest, qc);
}

/* Run the statement as supautils.superuser, restoring the caller's identity on any exit. */
static void
run_as_superuser(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
				 ProcessUtilityContext context, ParamListInfo params, QueryEnvironment *queryEnv,
				 DestReceiver *dest, QueryCompletion *qc)
{
	Oid			saved_user;
	int			saved_context;
	Oid			target;

	if (superuser_name == NULL || superuser_name[0] == '\0')
		target = BOOTSTRAP_SUPERUSERID;
	else
		target = get_role_oid(superuser_name, false);
	GetUserIdAndSecContext(&saved_user, &saved_context);
	if (saved_user == target)
	{
		run_next(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
		return;
	}
	SetUserIdAndSecContext(target, saved_context | SECURITY_LOCAL_USERID_CHANGE);
	PG_TRY();
	{
		run_next(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
	}
	PG_FINALLY();
	{
		SetUserIdAndSecContext(saved_user, saved_context);
	}
	PG_END_TRY();
}

static void
supautils_hook(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
			   ProcessUtilityContext context, ParamListInfo params, QueryEnvironment *queryEnv,
			   DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *node = pstmt->utilityStmt;

	switch (nodeTag(node))
	{
		case T_CreateExtensionStmt:
			{
				/* never modify a cached tree: work on a copy */
				PlannedStmt *copy = copyObject(pstmt);
				CreateExtensionStmt *stmt = (CreateExtensionStmt *) copy->utilityStmt;

				apply_override(stmt);
				if (is_privileged(stmt->extname))
					run_as_superuser(copy, queryString, false, context, params, queryEnv, dest, qc);
				else
					run_next(copy, queryString, false, context, params, queryEnv, dest, qc);
				return;
			}
		case T_AlterExtensionStmt:
			if (!superuser() && is_privileged(((AlterExtensionStmt *) node)->extname))
			{
				run_as_superuser(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
				return;
			}
			break;
		case T_AlterObjectSchemaStmt:
			{
				AlterObjectSchemaStmt *stmt = (AlterObjectSchemaStmt *) node;

				if (!superuser() && stmt->objectType == OBJECT_EXTENSION
					&& is_privileged(strVal(stmt->object)))
				{
					run_as_superuser(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
					return;
				}
				break;
			}
		case T_DropStmt:
			{
				DropStmt   *stmt = (DropStmt *) node;

				if (!superuser() && stmt->removeType == OBJECT_EXTENSION && all_privileged(stmt->objects))
				{
					run_as_superuser(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
					return;
				}
				break;
			}
		default:
			break;
	}
	run_next(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
}

void
_PG_init(void)
{
	DefineCustomStringVariable("supautils.privileged_extensions",
							   "Extensions a non-superuser may create, update and drop.",
							   NULL, &privileged_extensions, NULL, PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("supautils.superuser",
							   "The role privileged extension commands run as.",
							   NULL, &superuser_name, NULL, PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("supautils.privileged_role",
							   "The non-superuser role the platform privileges.",
							   NULL, &privileged_role, NULL, PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("supautils.extensions_parameter_overrides",
							   "JSON object: extension name -> {\"schema\": forced schema}.",
							   NULL, &parameter_overrides, NULL, PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("supautils.privileged_extensions_custom_scripts_path",
							   "Where before/after-create scripts live (unused by localdb).",
							   NULL, &custom_scripts_path, NULL, PGC_SIGHUP, 0, NULL, NULL, NULL);
#if PG_VERSION_NUM >= 150000
	MarkGUCPrefixReserved("supautils");
#else
	EmitWarningsOnPlaceholders("supautils");
#endif

	prev_hook = ProcessUtility_hook;
	ProcessUtility_hook = supautils_hook;
}
