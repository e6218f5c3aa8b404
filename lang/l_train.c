/* What the estimator bindings share: reading training options from a
 * Lua spec, pushing a trained model with its report, and the userdata of
 * a loaded model (sbi.Flow, sbi.Classifier). */
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

/* ---- reading options ----
 *
 * Every option is required: the stdlib fills the defaults (they go into
 * the cache keys), so C has none of its own that could disagree. */

/* Pushes spec[k]; raises naming k when it is nil. [..] -> [.., v] */
static int
get_required(lua_State *L, int spec, const char *k)
{
	luaL_checkstack(L, 2, "reading options");
	int t = lua_getfield(L, spec, k);
	if (t == LUA_TNIL)
		luaL_error(L, "option '%s' is required", k);
	return t;
}

/* [..] -> [..] */
lua_Integer
sbi__spec_int(lua_State *L, int spec, const char *k, lua_Integer min, lua_Integer max)
{
	get_required(L, spec, k);
	int ok;
	lua_Integer v = lua_tointegerx(L, -1, &ok);
	if (!ok)
		luaL_error(L, "option '%s' must be an integer, got %s", k,
		    lua_type(L, -1) == LUA_TNUMBER ? "a number with a fraction" : luaL_typename(L, -1));
	lua_pop(L, 1);
	if (v < min || v > max)
		luaL_error(L, "option '%s' must be in %I..%I, got %I", k, min, max, v);
	return v;
}

/* [..] -> [..] */
double
sbi__spec_num(lua_State *L, int spec, const char *k)
{
	get_required(L, spec, k);
	int ok;
	double v = lua_tonumberx(L, -1, &ok);
	if (!ok)
		luaL_error(L, "option '%s' must be a number, got %s", k, luaL_typename(L, -1));
	lua_pop(L, 1);
	return v;
}

/* [..] -> [..] */
int
sbi__spec_bool(lua_State *L, int spec, const char *k)
{
	if (get_required(L, spec, k) != LUA_TBOOLEAN)
		luaL_error(L, "option '%s' must be a boolean, got %s", k, luaL_typename(L, -1));
	int v = lua_toboolean(L, -1);
	lua_pop(L, 1);
	return v;
}

const char *
sbi__spec_str(lua_State *L, int spec, const char *k)
{
	if (get_required(L, spec, k) != LUA_TSTRING)
		luaL_error(L, "option '%s' must be a string, got %s", k, luaL_typename(L, -1));
	return lua_tostring(L, -1);
}

sbi_mat *
sbi__spec_mat(lua_State *L, int spec, const char *k, int required)
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

const char *
sbi__spec_model(lua_State *L, int spec, const char *k, size_t *len)
{
	luaL_checkstack(L, 2, "reading options");
	int t = lua_getfield(L, spec, k);
	if (t == LUA_TNIL) {
		lua_pop(L, 1);
		return NULL;
	}
	if (t != LUA_TSTRING)
		luaL_error(L, "option '%s' must be a model string (as a training call returns), got %s", k,
		    luaL_typename(L, -1));
	return lua_tolstring(L, -1, len);
}

void
sbi__check_cols(lua_State *L, const sbi_mat *m, const char *k)
{
	if (m && m->ncol > SBI_MAX_DIM)
		luaL_error(L, "option '%s' has %I columns, more than %I", k, (lua_Integer)m->ncol,
		    (lua_Integer)SBI_MAX_DIM);
}

int
sbi__activation(lua_State *L, const char *name)
{
	int act = sbi_act_parse(name);
	if (act == 0)
		return luaL_error(L, "unknown activation '%s' (expected %s)", name, sbi_act_names());
	return act;
}

void
sbi__spec_embed(lua_State *L, int spec, sbi_embed_config *e)
{
	memset(e, 0, sizeof *e);
	luaL_checkstack(L, 4, "reading options");
	int t = lua_getfield(L, spec, "embedding");
	if (t == LUA_TNIL) {
		lua_pop(L, 1);
		return;
	}
	if (t != LUA_TTABLE)
		luaL_error(L, "option 'embedding' must be a table, got %s", luaL_typename(L, -1));
	int et = lua_gettop(L);
	e->out = (size_t)sbi__spec_int(L, et, "out", 1, SBI_MAX_SHAPE);
	e->act = sbi__activation(L, sbi__spec_str(L, et, "activation"));
	if (lua_getfield(L, et, "hidden") != LUA_TTABLE)
		luaL_error(L, "option 'embedding.hidden' must be a list of layer widths");
	lua_Integer n = luaL_len(L, -1);
	if (n < 0 || n > SBI_EMBED_MAX_LAYERS)
		luaL_error(L, "option 'embedding.hidden' has %I layers, at most %d", n, SBI_EMBED_MAX_LAYERS);
	for (lua_Integer i = 1; i <= n; i++) {
		lua_geti(L, -1, i);
		int ok;
		lua_Integer w = lua_tointegerx(L, -1, &ok);
		if (!ok || w < 1 || w > SBI_MAX_SHAPE)
			luaL_error(L, "option 'embedding.hidden' entry %I must be an integer in 1..%I", i, SBI_MAX_SHAPE);
		e->hidden[i - 1] = (size_t)w;
		lua_pop(L, 1);
	}
	e->layers = (size_t)n;
	lua_pop(L, 3); /* hidden, activation, embedding */
}

void
sbi__train_opts(lua_State *L, int spec, sbi_train_opts *o, uint64_t seed)
{
	/* One statement each: the order of the checks is the order of errors. */
	memset(o, 0, sizeof *o);
	o->batch = (size_t)sbi__spec_int(L, spec, "batch_size", 1, SBI_MAX_COUNT);
	o->max_epochs = (size_t)sbi__spec_int(L, spec, "max_epochs", 1, SBI_MAX_COUNT);
	o->patience = (size_t)sbi__spec_int(L, spec, "patience", 0, SBI_MAX_COUNT);
	o->lr = sbi__spec_num(L, spec, "learning_rate");
	o->val_fraction = sbi__spec_num(L, spec, "validation_fraction");
	o->clip = sbi__spec_num(L, spec, "clip");
	/* Optional (false when absent): specs without it keep their split. */
	int t = lua_getfield(L, spec, "nested_split");
	lua_pop(L, 1);
	o->nested_split = t == LUA_TNIL ? 0 : sbi__spec_bool(L, spec, "nested_split");
	o->seed = seed;
	o->label = sbi__spec_str(L, spec, "label");
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

void
sbi__trained_free(l_trained *tr)
{
	sbi_free(tr->blob);
	tr->blob = NULL;
	tr->len = 0;
	sbi_train_report_free(&tr->rep);
}

/* __gc and __close of a trained box. [box] -> [box] */
static int
trained_box_free(lua_State *L)
{
	sbi__trained_free(lua_touserdata(L, 1));
	return 0;
}

l_trained *
sbi__push_trained_box(lua_State *L)
{
	return sbi__push_box(L, sizeof(l_trained), "sbi.TrainedBox", trained_box_free);
}

void
sbi__push_trained(lua_State *L, const l_trained *tr)
{
	lua_pushlstring(L, (const char *)tr->blob, tr->len);
	push_report(L, &tr->rep);
}

/* ---- loaded models ----
 *
 * The metamethods get their kind as upvalue 1 (sbi__new_model_type). */

l_model *
sbi__check_model(lua_State *L, int idx, const l_model_kind *k)
{
	l_model *lm = luaL_checkudata(L, idx, k->tname);
	if (lm->m == NULL || lm->released)
		sbi__argerror(L, idx, k->released);
	return lm;
}

int
sbi__load_model(lua_State *L, const l_model_kind *k)
{
	size_t len;
	const char *blob = luaL_checklstring(L, 1, &len);
	sbi__refuse_closing(L);
	l_model *lm = lua_newuserdatauv(L, sizeof *lm, 0); /* [blob, model] */
	lm->m = NULL;
	lm->t = NULL;
	lm->released = 0;
	luaL_setmetatable(L, k->tname);
	sbi_err err = { 0 };
	if ((lm->m = k->load((const unsigned char *)blob, len, &err)) == NULL)
		return luaL_error(L, "cannot load the trained model: %s", err.msg);
	if ((lm->t = sbi_tape_alloc()) == NULL)
		return luaL_error(L, "out of memory");
	return 1;
}

/* The kind of the metamethod running. */
static const l_model_kind *
model_kind(lua_State *L)
{
	return lua_touserdata(L, lua_upvalueindex(1));
}

/* __gc: frees the model and its tape. [model] -> [model] */
static int
model_gc(lua_State *L)
{
	const l_model_kind *k = model_kind(L);
	l_model *lm = luaL_checkudata(L, 1, k->tname);
	k->free(lm->m);
	sbi_tape_free(lm->t);
	lm->m = NULL;
	lm->t = NULL;
	return 0;
}

/* __close: releases the model (freed by __gc). [model] -> [model] */
static int
model_close(lua_State *L)
{
	((l_model *)luaL_checkudata(L, 1, model_kind(L)->tname))->released = 1;
	return 0;
}

/* __tostring: the kind's name of an open model, "sbi.Flow (released)" and
 * the like of another. [model] -> [model, s] */
static int
model_tostring(lua_State *L)
{
	const l_model_kind *k = model_kind(L);
	l_model *lm = luaL_checkudata(L, 1, k->tname);
	if (lm->m == NULL || lm->released)
		lua_pushfstring(L, "%s (released)", k->tname);
	else
		k->push_name(L, lm->m);
	return 1;
}

static const luaL_Reg model_meta[] = {
	{ "__gc", model_gc }, { "__close", model_close }, { "__tostring", model_tostring }, { NULL, NULL },
};

void
sbi__new_model_type(lua_State *L, const l_model_kind *k, const luaL_Reg *methods)
{
	lua_pushlightuserdata(L, (void *)k); /* [.., k] */
	sbi__new_type_up(L, k->tname, model_meta, methods, 1);
}
