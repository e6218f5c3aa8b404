/* What the estimator bindings share: reading training options from a
 * Lua spec and pushing a trained model with its report. */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#include "lnn.h"
#include "sbi/alloc.h"

/* OpenBLAS runs on one thread for training and sampling, whatever --jobs
 * is: its threaded GEMM splits reductions differently, which would make
 * results depend on --jobs, and at these matrix sizes (batches of 50-200,
 * 50 hidden units) a second thread made training 3-4x slower, not faster
 * (tests/bench/neural_speed.sh, docs/benchmarks-neural.md). --jobs
 * parallelizes simulations and the training of several flows at once
 * (core.flow_train_each). */
void
sbi__blas_threads(void)
{
	/* SBI_BLAS_THREADS: for benchmarks that measure the thread count. */
	const char *env = getenv("SBI_BLAS_THREADS");
	int n = env ? atoi(env) : 1;
	openblas_set_num_threads(n >= 1 && n <= 64 ? n : 1);
}

/* ---- reading options ---- */

lua_Integer
sbi__opt_int(lua_State *L, int spec, const char *k, lua_Integer def, lua_Integer min, lua_Integer max)
{
	lua_getfield(L, spec, k);
	lua_Integer v = lua_isnil(L, -1) ? def : luaL_checkinteger(L, -1);
	lua_pop(L, 1);
	if (v < min || v > max)
		luaL_error(L, "option '%s' must be in %I..%I, got %I", k, min, max, v);
	return v;
}

void
sbi__check_cols(lua_State *L, const sbi_mat *m, const char *k)
{
	if (m && m->ncol > SBI_MAX_DIM)
		luaL_error(L, "option '%s' has %I columns, more than %I", k, (lua_Integer)m->ncol,
		    (lua_Integer)SBI_MAX_DIM);
}

double
sbi__opt_num(lua_State *L, int spec, const char *k, double def)
{
	lua_getfield(L, spec, k);
	double v = lua_isnil(L, -1) ? def : luaL_checknumber(L, -1);
	lua_pop(L, 1);
	return v;
}

const char *
sbi__opt_str(lua_State *L, int spec, const char *k, const char *def)
{
	luaL_checkstack(L, 2, "reading options");
	lua_getfield(L, spec, k);
	return luaL_optstring(L, -1, def);
}

sbi_mat *
sbi__opt_mat(lua_State *L, int spec, const char *k, int required)
{
	luaL_checkstack(L, 2, "reading options");
	lua_getfield(L, spec, k);
	sbi_mat *m = NULL;
	if (!lua_isnil(L, -1)) {
		int v = lua_gettop(L);
		if (!luaL_testudata(L, v, SBI_MT_MAT))
			sbi__check_field_udata(L, v, SBI_MT_MAT, lua_pushfstring(L, "option '%s'", k));
		m = sbi__check_mat(L, -1)->m;
	}
	else if (required)
		luaL_error(L, "option '%s' (a matrix) is required", k);
	return m;
}

int
sbi__activation(lua_State *L, const char *name)
{
	static const char *names[] = { "tanh", "relu", "elu", "silu", NULL };
	for (int i = 0; names[i]; i++)
		if (strcmp(names[i], name) == 0)
			return i + 1;
	return luaL_error(L, "unknown activation '%s' (expected tanh, relu, elu or silu)", name);
}

void
sbi__train_opts(lua_State *L, int spec, sbi_train_opts *o, uint64_t seed)
{
	sbi_train_opts_default(o);
	o->batch = (size_t)sbi__opt_int(L, spec, "batch_size", 200, 1, SBI_MAX_COUNT);
	o->max_epochs = (size_t)sbi__opt_int(L, spec, "max_epochs", 2000, 1, SBI_MAX_COUNT);
	o->patience = (size_t)sbi__opt_int(L, spec, "patience", 20, 0, SBI_MAX_COUNT);
	o->lr = sbi__opt_num(L, spec, "learning_rate", 5e-4);
	o->val_fraction = sbi__opt_num(L, spec, "validation_fraction", 0.1);
	o->clip = sbi__opt_num(L, spec, "clip", 5.0);
	o->seed = seed;
	o->label = sbi__opt_str(L, spec, "label", "train");
	sbi_runctx *ctx = sbi__runctx(L);
	o->quiet = ctx ? ctx->quiet : 0;
}

/* ---- results ---- */

/* [..] -> [.., report] */
static void
push_report(lua_State *L, const sbi_train_report *rep)
{
	lua_createtable(L, 0, 8);
	lua_pushinteger(L, (lua_Integer)rep->epochs);
	lua_setfield(L, -2, "epochs");
	lua_pushinteger(L, (lua_Integer)rep->best_epoch);
	lua_setfield(L, -2, "best_epoch");
	lua_pushinteger(L, (lua_Integer)rep->steps);
	lua_setfield(L, -2, "steps");
	lua_pushnumber(L, rep->best_val_loss);
	lua_setfield(L, -2, "best_val_loss");
	lua_pushnumber(L, rep->seconds);
	lua_setfield(L, -2, "seconds");
	sbi_mat *tl = sbi_mat_alloc(rep->epochs, 2);
	if (tl)
		for (size_t e = 0; e < rep->epochs; e++)
			tl->data[2 * e] = rep->train_loss[e], tl->data[2 * e + 1] = rep->val_loss[e];
	sbi__push_mat(L, tl);
	lua_setfield(L, -2, "losses");
}

static int
free_box(lua_State *L)
{
	unsigned char **box = lua_touserdata(L, 1);
	sbi_free(*box);
	*box = NULL;
	return 0;
}

int
sbi__push_trained(lua_State *L, int rc, unsigned char *blob, size_t len, sbi_train_report *rep,
    const sbi_err *err)
{
	if (rc != SBI_OK) {
		sbi_train_report_free(rep);
		sbi_free(blob);
		return luaL_error(L, "%s", err->msg);
	}
	sbi_runctx *ctx = sbi__runctx(L);
	if (ctx && ctx->closing) {
		sbi_train_report_free(rep);
		sbi_free(blob);
		sbi__refuse_closing(L);
	}
	/* lua_pushlstring can raise on OOM: keep blob in a box the GC frees. */
	unsigned char **box = lua_newuserdatauv(L, sizeof *box, 0);
	*box = NULL;
	if (sbi__newmetatable(L, "sbi.FreeBox")) {
		lua_pushcfunction(L, free_box);
		lua_setfield(L, -2, "__gc");
	}
	lua_setmetatable(L, -2);
	*box = blob;
	lua_pushlstring(L, (const char *)blob, len);
	lua_remove(L, -2); /* the box frees blob when collected */
	push_report(L, rep);
	sbi_train_report_free(rep);
	return 2;
}
