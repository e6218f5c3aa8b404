/* sbi.Flow for Lua, the conditional density estimators:
 * core.flow_train, core.flow_train_each, core.flow_load and the Flow
 * methods (sample, log_prob, dims). */
#include <string.h>

#include "lnn.h"
#include "sbi/fit.h"
#include "sbi/rng.h"

/* ---- training ---- */

/* One flow to train: read from a Lua spec, then trained without touching
 * Lua (so several can train in threads at once). */
typedef struct flow_job {
	l_train_job t; /* first: the result (l_train_jobs.c) */
	sbi_flow_config cfg;
	sbi_train_opts o;
	const sbi_mat *y, *c; /* borrowed from the spec, whose values stay on the stack */
	sbi_flow_fit_opts fo; /* atoms and log_prior (a Mat on the stack); init set while training */
	const char *init;     /* the warm start's model file (on the stack) or NULL */
	size_t init_len;
} flow_job;

/* log p(y_i) under the spec's prior, for the atomic loss. Computed now:
 * Lua code that runs later (another spec's metamethods) could release the
 * prior or fold it into a joint one. [..] -> [.., prior, log p (Mat)] */
static const double *
spec_log_prior(lua_State *L, int spec, const sbi_mat *y)
{
	luaL_checkstack(L, 3, "reading options");
	if (lua_getfield(L, spec, "prior") == LUA_TNIL)
		luaL_error(L, "option 'prior' (the .c of the sbi.prior of y) is required with 'atoms'");
	if (!luaL_testudata(L, -1, SBI_MT_PRIOR))
		luaL_error(L, "option 'prior' must be the C prior (the .c of an sbi.prior), got %s",
		    lua_istable(L, -1) ? "a table" : luaL_typename(L, -1));
	sbi_prior *p = sbi__check_prior(L, -1);
	if (sbi_prior_dim(p) != y->ncol)
		luaL_error(L, "option 'prior' has dimension %d but y has %d columns", (int)sbi_prior_dim(p), (int)y->ncol);
	sbi_mat *lp = sbi__push_new_mat(L, y->nrow, 1);
	sbi_fit_log_prior(p, y->data, y->nrow, lp->data);
	return lp->data;
}

/* The optional atoms (with prior) and init of a flow spec.
 * [..] -> [.., values kept alive while j is used] */
static void
read_flow_extras(lua_State *L, int spec, flow_job *j)
{
	memset(&j->fo, 0, sizeof j->fo);
	luaL_checkstack(L, 2, "reading options");
	int atoms = lua_getfield(L, spec, "atoms") != LUA_TNIL;
	lua_pop(L, 1);
	if (atoms) {
		j->fo.atoms = (size_t)sbi__spec_int(L, spec, "atoms", 2, SBI_MAX_SMALL);
		if (j->cfg.context == 0)
			luaL_error(L, "option 'atoms' needs a context (the atomic loss fits q(y | context))");
		j->fo.log_prior = spec_log_prior(L, spec, j->y);
	}
	j->init = sbi__spec_model(L, spec, "init", &j->init_len);
}

/* Reads j from the spec, a table at index spec; every option is required (the
 * stdlib fills the defaults), except those the kind does not use.
 * [..] -> [.., values kept alive while j is used] */
static void
read_flow_job(lua_State *L, int spec, void *job)
{
	flow_job *j = job;
	const sbi_mat *y = sbi__spec_mat(L, spec, "y", 1), *c = sbi__spec_mat(L, spec, "context", 0);
	sbi__check_cols(L, y, "y");
	sbi__check_cols(L, c, "context");
	const char *kind = sbi__spec_str(L, spec, "kind");
	int nsf = strcmp(kind, "nsf") == 0, mdn = strcmp(kind, "mdn") == 0;
	if (strcmp(kind, "maf") != 0 && !nsf && !mdn)
		luaL_error(L, "unknown density estimator '%s' (expected \"maf\", \"nsf\" or \"mdn\")", kind);
	if (mdn && c == NULL)
		luaL_error(L, "a mixture density network needs a context");
	sbi_flow_config *cfg = &j->cfg;
	cfg->kind = nsf ? SBI_FLOW_NSF : mdn ? SBI_FLOW_MDN : SBI_FLOW_MAF;
	cfg->dim = y->ncol;
	cfg->context = c ? c->ncol : 0;
	cfg->transforms = mdn ? 1 : (size_t)sbi__spec_int(L, spec, "transforms", 1, SBI_MAX_SMALL);
	cfg->hidden = (size_t)sbi__spec_int(L, spec, "hidden", 1, SBI_MAX_SHAPE);
	cfg->layers = (size_t)sbi__spec_int(L, spec, "layers", 0, SBI_MAX_SMALL);
	/* An MDN's components are its bins; a MAF has no bins and no bound,
	 * and the MAF and MDN model files record the values they always had. */
	cfg->bins = mdn ? (size_t)sbi__spec_int(L, spec, "components", 1, SBI_MAX_SMALL)
		  : nsf ? (size_t)sbi__spec_int(L, spec, "bins", 2, SBI_MAX_SMALL) : 10;
	cfg->bound = nsf ? sbi__spec_num(L, spec, "bound") : 3.0;
	cfg->act = sbi__activation(L, sbi__spec_str(L, spec, "activation"));
	cfg->seed = (uint64_t)sbi__spec_int(L, spec, "seed", 0, LUA_MAXINTEGER);
	sbi__spec_embed(L, spec, &cfg->embed);
	if (cfg->embed.out && c == NULL)
		luaL_error(L, "option 'embedding' needs a context (it embeds the context)");
	sbi__train_opts(L, spec, &j->o, cfg->seed);
	if (c && c->nrow != y->nrow)
		luaL_error(L, "y has %d rows but context has %d", (int)y->nrow, (int)c->nrow);
	j->y = y, j->c = c;
	read_flow_extras(L, spec, j);
}

/* Trains j and saves the model into j->blob: no Lua calls, no shared
 * state, so jobs may run in parallel threads. */
static void
run_flow_job(void *job)
{
	flow_job *j = job;
	l_train_job *t = &j->t;
	sbi_err e = { 0 };
	sbi_flow *init = j->init ? sbi_flow_load((const unsigned char *)j->init, j->init_len, &e) : NULL, *f;
	if (j->init && init == NULL) {
		t->rc = sbi_err_set(&t->err, e.code, "option 'init': %s", e.msg);
		return;
	}
	j->fo.init = init;
	t->rc = sbi_fit_flow_ex(&j->cfg, &j->fo, &j->o, j->y->data, j->c ? j->c->data : NULL, j->y->nrow, &f,
	    &t->out.rep, &t->err);
	j->fo.init = NULL;
	sbi_flow_free(init);
	if (t->rc == SBI_OK)
		t->rc = sbi_flow_save(f, &t->out.blob, &t->out.len, &t->err);
	sbi_flow_free(f);
}

static const l_train_kind flow_kind = { "flow", sizeof(flow_job), read_flow_job, run_flow_job };

/* core.flow_train(spec) -> model blob (string), report */
static int
l_flow_train(lua_State *L)
{
	return sbi__train_one(L, &flow_kind);
}

/* core.flow_train_each({ spec, ... }) -> { { model =, report = }, ... }:
 * several flows in threads or over the MPI ranks (l_train_jobs.c). */
static int
l_flow_train_each(lua_State *L)
{
	return sbi__train_each(L, &flow_kind);
}

/* ---- loaded flows ---- */

/* core.flow_load(blob) -> Flow */
static int
l_flow_load(lua_State *L)
{
	return sbi__load_model(L, &sbi__flow_kind);
}

/* flow:sample(n, context, seed [, index]) -> Mat */
static int
l_flow_sample(lua_State *L)
{
	l_model *lf = sbi__check_model(L, 1, &sbi__flow_kind);
	lua_Integer n = luaL_checkinteger(L, 2);
	luaL_argcheck(L, n >= 1 && n <= (1 << 30), 2, "sample count out of range");
	const sbi_flow_config *cfg = sbi_flow_config_of(lf->m);
	uint64_t seed = (uint64_t)luaL_checkinteger(L, 4), index = (uint64_t)luaL_optinteger(L, 5, 0);
	double *c = cfg->context ? sbi__to_vector(L, 3, cfg->context, "the context") : NULL;
	sbi__blas_threads();
	gsl_rng *r = sbi__push_rng(L, seed, SBI_STREAM_METHOD, index);
	sbi_mat *out = sbi__push_new_mat(L, (size_t)n, cfg->dim);
	sbi_err err = { 0 };
	if (sbi_flow_sample(lf->m, lf->t, c, (size_t)n, r, out->data, &err) != SBI_OK)
		return luaL_error(L, "%s", err.msg);
	return 1;
}

/* flow:log_prob(y, context) -> Mat (n x 1); either may be one row, broadcast. */
static int
l_flow_log_prob(lua_State *L)
{
	l_model *lf = sbi__check_model(L, 1, &sbi__flow_kind);
	const sbi_flow_config *cfg = sbi_flow_config_of(lf->m);
	sbi_mat *y = sbi__check_mat(L, 2)->m, *c = cfg->context ? sbi__check_mat(L, 3)->m : NULL;
	if (y->ncol != cfg->dim || (c && c->ncol != cfg->context))
		return luaL_error(L, "log_prob: y needs %d columns and the context %d", (int)cfg->dim, (int)cfg->context);
	size_t n = c == NULL || y->nrow > c->nrow ? y->nrow : c->nrow;
	if ((y->nrow != n && y->nrow != 1) || (c && c->nrow != n && c->nrow != 1))
		return luaL_error(L, "log_prob: row counts %d and %d do not broadcast", (int)y->nrow, (int)c->nrow);
	sbi__blas_threads();
	sbi_mat *out = sbi__push_new_mat(L, n, 1);
	sbi_err err = { 0 };
	if (sbi_flow_log_prob(lf->m, lf->t, y->data, y->nrow == 1, c ? c->data : NULL, c && c->nrow == 1, n,
	    out->data, &err) != SBI_OK)
		return luaL_error(L, "%s", err.msg);
	return 1;
}

/* f:dims() -> dim, context. [f] -> [f, dim, context] */
static int
l_flow_dims(lua_State *L)
{
	const sbi_flow_config *cfg = sbi_flow_config_of(sbi__check_model(L, 1, &sbi__flow_kind)->m);
	lua_pushinteger(L, (lua_Integer)cfg->dim);
	lua_pushinteger(L, (lua_Integer)cfg->context);
	return 2;
}

/* ---- the kind ---- */

static void *
flow_load(const unsigned char *blob, size_t len, sbi_err *err)
{
	return sbi_flow_load(blob, len, err);
}

static void
flow_free(void *m)
{
	sbi_flow_free(m);
}

/* "sbi.Flow(nsf, dim 2, context 3)". [..] -> [.., s] */
static void
flow_name(lua_State *L, const void *m)
{
	const sbi_flow_config *cfg = sbi_flow_config_of(m);
	const char *kind = cfg->kind == SBI_FLOW_NSF ? "nsf" : cfg->kind == SBI_FLOW_MDN ? "mdn" : "maf";
	lua_pushfstring(L, SBI_MT_FLOW "(%s, dim %I, context %I)", kind, (lua_Integer)cfg->dim,
	    (lua_Integer)cfg->context);
}

const l_model_kind sbi__flow_kind = {
	.tname = SBI_MT_FLOW,
	.released = "released flow",
	.load = flow_load,
	.free = flow_free,
	.push_name = flow_name,
};

static const luaL_Reg flow_methods[] = {
	{ "sample", l_flow_sample }, { "log_prob", l_flow_log_prob }, { "dims", l_flow_dims }, { NULL, NULL },
};

static const luaL_Reg flow_funcs[] = {
	{ "flow_train", l_flow_train }, { "flow_train_each", l_flow_train_each }, { "flow_load", l_flow_load },
	{ NULL, NULL },
};

/* [core] -> [core] */
void
sbi__open_flow(lua_State *L)
{
	sbi__new_model_type(L, &sbi__flow_kind, flow_methods);
	luaL_setfuncs(L, flow_funcs, 0);
	lua_pushinteger(L, SBI_FLOW_FORMAT);
	lua_setfield(L, -2, "FLOW_FORMAT");
}
