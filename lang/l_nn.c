/* Neural estimators and MCMC for Lua: sbi.Flow (conditional density
 * estimators), core.flow_train, core.flow_train_each, core.flow_load,
 * the NRE classifiers and core.mcmc. */
#include <cblas.h>
#include <pthread.h>
#include <stdatomic.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lsbi.h"
#include "lstate.h"
#include "sbi/alloc.h"
#include "sbi/classifier.h"
#include "sbi/flow.h"
#include "sbi/mcmc.h"
#include "sbi/progress.h"
#include "sbi/rng.h"
#include "sbi/train.h"

#define SBI_MAX_TRAIN_THREADS 64

#define SBI_MT_FLOW "sbi.Flow"
#define SBI_MT_CLASSIFIER "sbi.Classifier"

typedef struct l_flow {
	sbi_flow *f;
	sbi_tape *t;
} l_flow;

static l_flow *
check_flow(lua_State *L, int idx)
{
	l_flow *lf = luaL_checkudata(L, idx, SBI_MT_FLOW);
	if (lf->f == NULL)
		sbi__argerror(L, idx, "released flow");
	return lf;
}

/* OpenBLAS runs on one thread for training and sampling, whatever --jobs
 * is: its threaded GEMM splits reductions differently, which would make
 * results depend on --jobs, and at these matrix sizes (batches of 50-200,
 * 50 hidden units) a second thread made training 3-4x slower, not faster
 * (tests/bench/neural_speed.sh, docs/benchmarks-neural.md). --jobs
 * parallelizes simulations and the training of several flows at once
 * (core.flow_train_each). */
static void
set_threads(lua_State *L)
{
	(void)L;
	/* SBI_BLAS_THREADS: for benchmarks that measure the thread count. */
	const char *env = getenv("SBI_BLAS_THREADS");
	int n = env ? atoi(env) : 1;
	openblas_set_num_threads(n >= 1 && n <= 64 ? n : 1);
}

/* ---- reading options ---- */

/* Upper bounds of the integer options: far beyond any real use, and low
 * enough that the sizes computed from them cannot overflow. */
#define MAX_COUNT ((lua_Integer)1 << 30) /* samples, epochs, batch, warmup */
#define MAX_SHAPE ((lua_Integer)1 << 16) /* hidden units, chains, thinning */
#define MAX_SMALL ((lua_Integer)1 << 10) /* layers, transforms, bins, atoms */
#define MAX_DIM ((size_t)1 << 20)        /* columns of training data */

static lua_Integer
opt_int(lua_State *L, int spec, const char *k, lua_Integer def, lua_Integer min, lua_Integer max)
{
	lua_getfield(L, spec, k);
	lua_Integer v = lua_isnil(L, -1) ? def : luaL_checkinteger(L, -1);
	lua_pop(L, 1);
	if (v < min || v > max)
		luaL_error(L, "option '%s' must be in %I..%I, got %I", k, min, max, v);
	return v;
}

/* Raises unless the matrix option k has at most MAX_DIM columns. */
static void
check_cols(lua_State *L, const sbi_mat *m, const char *k)
{
	if (m && m->ncol > MAX_DIM)
		luaL_error(L, "option '%s' has %I columns, more than %I", k, (lua_Integer)m->ncol, (lua_Integer)MAX_DIM);
}

static double
opt_num(lua_State *L, int spec, const char *k, double def)
{
	lua_getfield(L, spec, k);
	double v = lua_isnil(L, -1) ? def : luaL_checknumber(L, -1);
	lua_pop(L, 1);
	return v;
}

/* opt_str and opt_mat leave the value on the stack, which keeps it alive
 * while it is used: the spec does not (an __index or a callback may take
 * it out of the spec, and the collector then free it). [..] -> [.., v] */
static const char *
opt_str(lua_State *L, int spec, const char *k, const char *def)
{
	luaL_checkstack(L, 2, "reading options");
	lua_getfield(L, spec, k);
	return luaL_optstring(L, -1, def);
}

static sbi_mat *
opt_mat(lua_State *L, int spec, const char *k, int required)
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

static int
activation(lua_State *L, const char *name)
{
	static const char *names[] = { "tanh", "relu", "elu", "silu", NULL };
	for (int i = 0; names[i]; i++)
		if (strcmp(names[i], name) == 0)
			return i + 1;
	return luaL_error(L, "unknown activation '%s' (expected tanh, relu, elu or silu)", name);
}

/* ---- training ---- */

typedef struct flow_fit {
	sbi_flow *f;
	float *ys, *cs, *yb, *cb;
	size_t dy, dc;
} flow_fit;

/* -mean log q(y | c) over the rows idx of the batch. */
static sbi_var
flow_loss(void *ud, sbi_tape *t, const size_t *idx, size_t n)
{
	flow_fit *F = ud;
	for (size_t i = 0; i < n; i++) {
		memcpy(F->yb + i * F->dy, F->ys + idx[i] * F->dy, F->dy * sizeof(float));
		if (F->dc)
			memcpy(F->cb + i * F->dc, F->cs + idx[i] * F->dc, F->dc * sizeof(float));
	}
	sbi_var y = sbi_ad_const(t, F->yb, n, F->dy), c = F->dc ? sbi_ad_const(t, F->cb, n, F->dc) : -1;
	return sbi_ad_scale(t, sbi_ad_mean(t, sbi_flow_log_prob_std(F->f, t, y, c)), -1.0f);
}

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

/* The end of a training call: pushes the model blob and the report, or
 * raises err; blob and rep are released either way. */
static int
push_trained(lua_State *L, int rc, unsigned char *blob, size_t len, sbi_train_report *rep, const sbi_err *err)
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

/* Training options common to every estimator. */
static void
read_train_opts(lua_State *L, int spec, sbi_train_opts *o, uint64_t seed)
{
	sbi_train_opts_default(o);
	o->batch = (size_t)opt_int(L, spec, "batch_size", 200, 1, MAX_COUNT);
	o->max_epochs = (size_t)opt_int(L, spec, "max_epochs", 2000, 1, MAX_COUNT);
	o->patience = (size_t)opt_int(L, spec, "patience", 20, 0, MAX_COUNT);
	o->lr = opt_num(L, spec, "learning_rate", 5e-4);
	o->val_fraction = opt_num(L, spec, "validation_fraction", 0.1);
	o->clip = opt_num(L, spec, "clip", 5.0);
	o->seed = seed;
	o->label = opt_str(L, spec, "label", "train");
	sbi_runctx *ctx = sbi__runctx(L);
	o->quiet = ctx ? ctx->quiet : 0;
}

/* One flow to train: read from a Lua spec, then trained without touching
 * Lua (so several can train in threads at once). */
typedef struct flow_job {
	sbi_flow_config cfg;
	sbi_train_opts o;
	const sbi_mat *y, *c; /* borrowed from the spec, which outlives the job */
	unsigned char *blob;  /* owned until pushed */
	size_t len;
	sbi_train_report rep;
	sbi_err err;
	int rc;
} flow_job;

static void
read_flow_job(lua_State *L, int spec, flow_job *j)
{
	luaL_checktype(L, spec, LUA_TTABLE);
	memset(j, 0, sizeof *j);
	const sbi_mat *y = opt_mat(L, spec, "y", 1), *c = opt_mat(L, spec, "context", 0);
	check_cols(L, y, "y");
	check_cols(L, c, "context");
	const char *kind = opt_str(L, spec, "kind", "maf");
	int nsf = strcmp(kind, "nsf") == 0, mdn = strcmp(kind, "mdn") == 0;
	if (strcmp(kind, "maf") != 0 && !nsf && !mdn)
		luaL_error(L, "unknown density estimator '%s' (expected \"maf\", \"nsf\" or \"mdn\")", kind);
	if (mdn && c == NULL)
		luaL_error(L, "a mixture density network needs a context");
	j->cfg = (sbi_flow_config){
		.kind = nsf ? SBI_FLOW_NSF : mdn ? SBI_FLOW_MDN : SBI_FLOW_MAF, .dim = y->ncol, .context = c ? c->ncol : 0,
		.transforms = mdn ? 1 : (size_t)opt_int(L, spec, "transforms", 5, 1, MAX_SMALL),
		.hidden = (size_t)opt_int(L, spec, "hidden", 50, 1, MAX_SHAPE), .layers = (size_t)opt_int(L, spec, "layers", 2, 0, MAX_SMALL),
		.bins = mdn ? (size_t)opt_int(L, spec, "components", 10, 1, MAX_SMALL) : (size_t)opt_int(L, spec, "bins", 10, 2, MAX_SMALL),
		.bound = opt_num(L, spec, "bound", 3.0),
		.act = activation(L, opt_str(L, spec, "activation", nsf ? "relu" : "tanh")),
		.seed = (uint64_t)opt_int(L, spec, "seed", 1, 0, LUA_MAXINTEGER),
	};
	read_train_opts(L, spec, &j->o, j->cfg.seed);
	if (c && c->nrow != y->nrow)
		luaL_error(L, "y has %d rows but context has %d", (int)y->nrow, (int)c->nrow);
	j->y = y, j->c = c;
}

/* Trains j: no Lua calls, no shared state (each job has its own flow,
 * tape, RNG and scratch), so jobs may run in parallel threads. */
static void
run_flow_job(flow_job *j)
{
	const sbi_mat *y = j->y, *c = j->c;
	sbi_flow *f = sbi_flow_alloc(&j->cfg, &j->err);
	size_t n = y->nrow, dy = y->ncol, dc = j->cfg.context;
	flow_fit F = { f, sbi_malloc(n * dy * sizeof(float)), dc ? sbi_malloc(n * dc * sizeof(float)) : NULL,
		sbi_malloc(j->o.batch * dy * sizeof(float)), dc ? sbi_malloc(j->o.batch * dc * sizeof(float)) : NULL, dy, dc };
	j->rc = f ? SBI_OK : j->err.code;
	if (j->rc == SBI_OK && (!F.ys || !F.yb || (dc && (!F.cs || !F.cb))))
		j->rc = sbi_err_set(&j->err, SBI_ENOMEM, "out of memory for training data");
	if (j->rc == SBI_OK) {
		sbi_flow_set_standardization(f, y->data, c ? c->data : NULL, n);
		sbi_flow_standardize(f, y->data, c ? c->data : NULL, n, F.ys, F.cs);
		size_t np;
		sbi_param **ps = sbi_flow_params(f, &np);
		sbi_trainable m = { ps, np, flow_loss, &F };
		j->rc = sbi_train(&m, n, &j->o, &j->rep, &j->err);
	}
	if (j->rc == SBI_OK)
		j->rc = sbi_flow_save(f, &j->blob, &j->len, &j->err);
	sbi_free(F.ys), sbi_free(F.cs), sbi_free(F.yb), sbi_free(F.cb);
	sbi_flow_free(f);
}

/* core.flow_train(spec) -> model blob (string), report */
static int
l_flow_train(lua_State *L)
{
	flow_job j;
	read_flow_job(L, 1, &j);
	set_threads(L);
	run_flow_job(&j); /* nothing raises until push_trained frees what it made */
	return push_trained(L, j.rc, j.blob, j.len, &j.rep, &j.err);
}

typedef struct job_queue {
	flow_job *jobs;
	size_t n;
	atomic_size_t next;
} job_queue;

static void *
job_worker(void *arg)
{
	job_queue *q = arg;
	for (size_t i; (i = atomic_fetch_add(&q->next, 1)) < q->n;)
		run_flow_job(&q->jobs[i]);
	return NULL;
}

/* Runs the jobs on up to `threads` threads (this one included); a thread
 * that cannot be started leaves its share to the others. */
static void
run_flow_jobs(flow_job *jobs, size_t n, size_t threads)
{
	job_queue q = { .jobs = jobs, .n = n };
	atomic_init(&q.next, 0);
	pthread_t tid[SBI_MAX_TRAIN_THREADS];
	size_t started = 0;
	threads = threads < n ? threads : n;
	threads = threads < SBI_MAX_TRAIN_THREADS ? threads : SBI_MAX_TRAIN_THREADS;
	for (size_t i = 1; i < threads; i++)
		if (pthread_create(&tid[started], NULL, job_worker, &q) == 0)
			started++;
	job_worker(&q);
	for (size_t i = 0; i < started; i++)
		pthread_join(tid[i], NULL);
}

/* core.flow_train_each({ spec, ... }) -> { { model =, report = }, ... }:
 * trains several flows, min(--jobs, #specs) at a time in threads. Each
 * flow is trained exactly as by core.flow_train, so the results do not
 * depend on --jobs. */
static int
l_flow_train_each(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	lua_Integer n = luaL_len(L, 1);
	luaL_argcheck(L, n >= 1 && n <= 64, 1, "expected 1 to 64 flow specifications");
	sbi__refuse_closing(L); /* before any job holds a blob */
	flow_job *jobs = lua_newuserdatauv(L, (size_t)n * sizeof *jobs, 0); /* freed by the GC */
	for (lua_Integer i = 0; i < n; i++) {
		luaL_checkstack(L, 2, "reading flow specifications");
		lua_geti(L, 1, i + 1);
		read_flow_job(L, lua_gettop(L), &jobs[i]); /* leaves the values it keeps on the stack */
	}
	sbi_runctx *ctx = sbi__runctx(L);
	set_threads(L);
	run_flow_jobs(jobs, (size_t)n, ctx && ctx->jobs > 1 ? (size_t)ctx->jobs : 1);
	/* Report the first failure after freeing every job's results. */
	for (lua_Integer i = 0; i < n; i++)
		if (jobs[i].rc != SBI_OK) {
			sbi_err e = jobs[i].err;
			for (lua_Integer k = 0; k < n; k++) {
				sbi_free(jobs[k].blob);
				sbi_train_report_free(&jobs[k].rep);
			}
			return luaL_error(L, "%s", e.msg);
		}
	lua_createtable(L, (int)n, 0);
	for (lua_Integer i = 0; i < n; i++) {
		/* push_trained frees job i's blob and report; later jobs' are still
		 * owned here, so free them if it raises: it only raises on OOM. */
		lua_createtable(L, 0, 2);
		push_trained(L, SBI_OK, jobs[i].blob, jobs[i].len, &jobs[i].rep, &jobs[i].err);
		jobs[i].blob = NULL;
		lua_setfield(L, -3, "report");
		lua_setfield(L, -2, "model");
		lua_rawseti(L, -2, i + 1);
	}
	return 1;
}

/* ---- loaded flows ---- */

/* core.flow_load(blob) -> Flow */
static int
l_flow_load(lua_State *L)
{
	size_t len;
	const char *blob = luaL_checklstring(L, 1, &len);
	sbi__refuse_closing(L);
	l_flow *lf = lua_newuserdatauv(L, sizeof *lf, 0);
	lf->f = NULL;
	lf->t = NULL;
	luaL_setmetatable(L, SBI_MT_FLOW);
	sbi_err err = { 0 };
	if ((lf->f = sbi_flow_load((const unsigned char *)blob, len, &err)) == NULL)
		return luaL_error(L, "cannot load the trained model: %s", err.msg);
	if ((lf->t = sbi_tape_alloc()) == NULL)
		return luaL_error(L, "out of memory");
	return 1;
}

/* flow:sample(n, context, seed [, index]) -> Mat */
static int
l_flow_sample(lua_State *L)
{
	l_flow *lf = check_flow(L, 1);
	lua_Integer n = luaL_checkinteger(L, 2);
	luaL_argcheck(L, n >= 1 && n <= (1 << 30), 2, "sample count out of range");
	const sbi_flow_config *cfg = sbi_flow_config_of(lf->f);
	uint64_t seed = (uint64_t)luaL_checkinteger(L, 4), index = (uint64_t)luaL_optinteger(L, 5, 0);
	double *c = cfg->context ? sbi__to_vector(L, 3, cfg->context, "the context") : NULL;
	set_threads(L);
	gsl_rng *r = sbi__push_rng(L, seed, SBI_STREAM_METHOD, index);
	sbi_mat *out = sbi_mat_alloc((size_t)n, cfg->dim);
	sbi__push_mat(L, out);
	if (out == NULL)
		return luaL_error(L, "out of memory");
	sbi_err err = { 0 };
	if (sbi_flow_sample(lf->f, lf->t, c, (size_t)n, r, out->data, &err) != SBI_OK)
		return luaL_error(L, "%s", err.msg);
	return 1;
}

/* flow:log_prob(y, context) -> Mat (n x 1); either may be one row, broadcast. */
static int
l_flow_log_prob(lua_State *L)
{
	l_flow *lf = check_flow(L, 1);
	const sbi_flow_config *cfg = sbi_flow_config_of(lf->f);
	sbi_mat *y = sbi__check_mat(L, 2)->m, *c = cfg->context ? sbi__check_mat(L, 3)->m : NULL;
	if (y->ncol != cfg->dim || (c && c->ncol != cfg->context))
		return luaL_error(L, "log_prob: y needs %d columns and the context %d", (int)cfg->dim, (int)cfg->context);
	size_t n = c == NULL || y->nrow > c->nrow ? y->nrow : c->nrow;
	if ((y->nrow != n && y->nrow != 1) || (c && c->nrow != n && c->nrow != 1))
		return luaL_error(L, "log_prob: row counts %d and %d do not broadcast", (int)y->nrow, (int)c->nrow);
	set_threads(L);
	sbi_mat *out = sbi_mat_alloc(n, 1);
	sbi__push_mat(L, out);
	if (out == NULL)
		return luaL_error(L, "out of memory");
	sbi_err err = { 0 };
	if (sbi_flow_log_prob(lf->f, lf->t, y->data, y->nrow == 1, c ? c->data : NULL, c && c->nrow == 1, n,
	    out->data, &err) != SBI_OK)
		return luaL_error(L, "%s", err.msg);
	return 1;
}

static int
l_flow_dims(lua_State *L)
{
	const sbi_flow_config *cfg = sbi_flow_config_of(check_flow(L, 1)->f);
	lua_pushinteger(L, (lua_Integer)cfg->dim);
	lua_pushinteger(L, (lua_Integer)cfg->context);
	return 2;
}

static int
l_flow_gc(lua_State *L)
{
	l_flow *lf = luaL_checkudata(L, 1, SBI_MT_FLOW);
	sbi_flow_free(lf->f);
	sbi_tape_free(lf->t);
	lf->f = NULL;
	lf->t = NULL;
	return 0;
}

/* ---- ratio classifiers ---- */

typedef struct clsf_fit {
	sbi_classifier *c;
	float *ts, *xs, *tb, *xb, *scratch;
	size_t dt, dx, atoms;
} clsf_fit;

static sbi_var
clsf_loss(void *ud, sbi_tape *t, const size_t *idx, size_t n)
{
	clsf_fit *F = ud;
	for (size_t i = 0; i < n; i++) {
		memcpy(F->tb + i * F->dt, F->ts + idx[i] * F->dt, F->dt * sizeof(float));
		memcpy(F->xb + i * F->dx, F->xs + idx[i] * F->dx, F->dx * sizeof(float));
	}
	return sbi_classifier_loss(F->c, t, F->tb, F->xb, n, F->atoms, F->scratch);
}

/* core.classifier_train(spec) -> model blob, report */
static int
l_classifier_train(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	sbi_mat *th = opt_mat(L, 1, "theta", 1), *x = opt_mat(L, 1, "x", 1);
	check_cols(L, th, "theta");
	check_cols(L, x, "x");
	if (th->nrow != x->nrow)
		return luaL_error(L, "theta has %d rows but x has %d", (int)th->nrow, (int)x->nrow);
	sbi_classifier_config cfg = { .dtheta = th->ncol, .dx = x->ncol,
		.hidden = (size_t)opt_int(L, 1, "hidden", 50, 1, MAX_SHAPE), .layers = (size_t)opt_int(L, 1, "layers", 2, 0, MAX_SMALL),
		.act = activation(L, opt_str(L, 1, "activation", "relu")), .seed = (uint64_t)opt_int(L, 1, "seed", 1, 0, LUA_MAXINTEGER) };
	lua_getfield(L, 1, "residual");
	cfg.residual = lua_isnil(L, -1) ? 1 : lua_toboolean(L, -1);
	lua_pop(L, 1);
	size_t atoms = (size_t)opt_int(L, 1, "atoms", 10, 0, MAX_SMALL);
	sbi_train_opts o;
	read_train_opts(L, 1, &o, cfg.seed);
	set_threads(L);
	sbi_err err = { 0 };
	sbi_classifier *c = sbi_classifier_alloc(&cfg, &err);
	size_t n = th->nrow, B = o.batch, K = atoms > 1 ? atoms : 1;
	clsf_fit F = { c, sbi_malloc(n * cfg.dtheta * sizeof(float)), sbi_malloc(n * cfg.dx * sizeof(float)),
		sbi_malloc(B * cfg.dtheta * sizeof(float)), sbi_malloc(B * cfg.dx * sizeof(float)),
		sbi_malloc(B * K * (cfg.dtheta + cfg.dx) * sizeof(float)), cfg.dtheta, cfg.dx, atoms };
	sbi_train_report rep = { 0 };
	unsigned char *blob = NULL;
	size_t len = 0;
	int rc = c ? SBI_OK : err.code;
	if (rc == SBI_OK && (!F.ts || !F.xs || !F.tb || !F.xb || !F.scratch))
		rc = sbi_err_set(&err, SBI_ENOMEM, "out of memory for training data");
	if (rc == SBI_OK) {
		sbi_classifier_set_standardization(c, th->data, x->data, n);
		sbi_classifier_standardize(c, th->data, x->data, n, F.ts, F.xs);
		size_t np;
		sbi_param **ps = sbi_classifier_params(c, &np);
		sbi_trainable m = { ps, np, clsf_loss, &F };
		rc = sbi_train(&m, n, &o, &rep, &err);
	}
	if (rc == SBI_OK)
		rc = sbi_classifier_save(c, &blob, &len, &err);
	sbi_free(F.ts), sbi_free(F.xs), sbi_free(F.tb), sbi_free(F.xb), sbi_free(F.scratch);
	sbi_classifier_free(c);
	return push_trained(L, rc, blob, len, &rep, &err);
}

typedef struct l_classifier {
	sbi_classifier *c;
	sbi_tape *t;
} l_classifier;

static l_classifier *
check_classifier(lua_State *L, int idx)
{
	l_classifier *lc = luaL_checkudata(L, idx, SBI_MT_CLASSIFIER);
	if (lc->c == NULL)
		sbi__argerror(L, idx, "released classifier");
	return lc;
}

/* core.classifier_load(blob) -> Classifier */
static int
l_classifier_load(lua_State *L)
{
	size_t len;
	const char *blob = luaL_checklstring(L, 1, &len);
	sbi__refuse_closing(L);
	l_classifier *lc = lua_newuserdatauv(L, sizeof *lc, 0);
	lc->c = NULL;
	lc->t = NULL;
	luaL_setmetatable(L, SBI_MT_CLASSIFIER);
	sbi_err err = { 0 };
	if ((lc->c = sbi_classifier_load((const unsigned char *)blob, len, &err)) == NULL)
		return luaL_error(L, "cannot load the trained model: %s", err.msg);
	if ((lc->t = sbi_tape_alloc()) == NULL)
		return luaL_error(L, "out of memory");
	return 1;
}

/* classifier:log_ratio(theta Mat, x row) -> Mat (n x 1) */
static int
l_classifier_log_ratio(lua_State *L)
{
	l_classifier *lc = check_classifier(L, 1);
	const sbi_classifier_config *cfg = sbi_classifier_config_of(lc->c);
	sbi_mat *th = sbi__check_mat(L, 2)->m;
	double *x = sbi__to_vector(L, 3, cfg->dx, "x");
	if (th->ncol != cfg->dtheta)
		return luaL_error(L, "log_ratio: theta needs %d columns", (int)cfg->dtheta);
	sbi_mat *out = sbi_mat_alloc(th->nrow, 1);
	sbi__push_mat(L, out);
	if (out == NULL)
		return luaL_error(L, "out of memory");
	sbi_err err = { 0 };
	if (sbi_classifier_log_ratio(lc->c, lc->t, th->data, x, th->nrow, out->data, &err) != SBI_OK)
		return luaL_error(L, "%s", err.msg);
	return 1;
}

static int
l_classifier_dims(lua_State *L)
{
	const sbi_classifier_config *cfg = sbi_classifier_config_of(check_classifier(L, 1)->c);
	lua_pushinteger(L, (lua_Integer)cfg->dtheta);
	lua_pushinteger(L, (lua_Integer)cfg->dx);
	return 2;
}

static int
l_classifier_gc(lua_State *L)
{
	l_classifier *lc = luaL_checkudata(L, 1, SBI_MT_CLASSIFIER);
	sbi_classifier_free(lc->c);
	sbi_tape_free(lc->t);
	lc->c = NULL;
	lc->t = NULL;
	return 0;
}

/* ---- MCMC ---- */

typedef struct target {
	lua_State *L;
	sbi_prior *prior;
	l_flow *flow;       /* NLE: log q(x_obs | theta) */
	l_classifier *clsf; /* NRE: log r(theta, x_obs) */
	const double *xobs;
	int npe;            /* the flow is q(theta | x_obs): no prior term, support only */
	int fn;             /* stack index of a Lua log-likelihood, or 0 */
	double *lp;         /* scratch n */
	char msg[SBI_ERR_MSG_MAX + 64];
} target;

/* log p(theta) + log-likelihood, batched; -inf outside the prior support. */
static int
target_logdens(void *ud, const double *theta, size_t n, size_t d, double *out)
{
	target *tg = ud;
	for (size_t i = 0; i < n; i++)
		out[i] = sbi_prior_log_density(tg->prior, theta + i * d);
	if (tg->clsf) {
		sbi_err err = { 0 };
		if (sbi_classifier_log_ratio(tg->clsf->c, tg->clsf->t, theta, tg->xobs, n, tg->lp, &err) != SBI_OK) {
			memcpy(tg->msg, err.msg, sizeof err.msg);
			return SBI_ENOMEM;
		}
		for (size_t i = 0; i < n; i++)
			out[i] += tg->lp[i];
		return SBI_OK;
	}
	if (tg->flow) {
		sbi_err err = { 0 };
		int rc = tg->npe ? sbi_flow_log_prob(tg->flow->f, tg->flow->t, theta, 0, tg->xobs, 1, n, tg->lp, &err)
				 : sbi_flow_log_prob(tg->flow->f, tg->flow->t, tg->xobs, 1, theta, 0, n, tg->lp, &err);
		if (tg->npe)
			for (size_t i = 0; i < n; i++)
				out[i] = isfinite(out[i]) ? 0.0 : -INFINITY;
		if (rc != SBI_OK) {
			memcpy(tg->msg, err.msg, sizeof err.msg);
			return SBI_ENOMEM;
		}
		for (size_t i = 0; i < n; i++)
			out[i] += tg->lp[i];
		return SBI_OK;
	}
	lua_State *L = tg->L;
	for (size_t i = 0; i < n; i++) {
		if (!isfinite(out[i]))
			continue;
		lua_pushvalue(L, tg->fn);
		lua_createtable(L, (int)d, 0);
		for (size_t j = 0; j < d; j++) {
			lua_pushnumber(L, theta[i * d + j]);
			lua_rawseti(L, -2, (lua_Integer)j + 1);
		}
		if (sbi__pcall(L, 1, 1) != LUA_OK) { /* its handler names where error({...}) was raised */
			/* Not luaL_tolstring: a __tostring could raise here, outside the pcall. */
			snprintf(tg->msg, sizeof tg->msg, "the log-likelihood raised: %s", lua_type(L, -1) == LUA_TSTRING ?
			    lua_tostring(L, -1) : "an error object that is not a string");
			lua_pop(L, 1);
			return SBI_EINVAL;
		}
		int isnum;
		double v = lua_tonumberx(L, -1, &isnum);
		lua_pop(L, 1);
		if (!isnum) {
			snprintf(tg->msg, sizeof tg->msg, "the log-likelihood returned a non-number");
			return SBI_EINVAL;
		}
		out[i] += v == v ? v : -INFINITY;
	}
	return SBI_OK;
}

static void
push_numbers(lua_State *L, const double *v, size_t n)
{
	lua_createtable(L, (int)n, 0);
	for (size_t j = 0; j < n; j++) {
		lua_pushnumber(L, v[j]);
		lua_rawseti(L, -2, (lua_Integer)j + 1);
	}
}

/* Userdata-backed scratch of n doubles (freed by the GC). */
static double *
scratch(lua_State *L, size_t n)
{
	return lua_newuserdatauv(L, (n ? n : 1) * sizeof(double), 0);
}

typedef struct mcmc_run {
	sbi_mcmc_kind kind;
	size_t d, chains, warmup, thin, nsamples, ncand;
	uint64_t seed;
} mcmc_run;

/* Starts: the chains' starting points chosen among prior draws by their
 * posterior density (sbi's "resample" initialization). */
static int
choose_starts(lua_State *L, target *tg, const mcmc_run *r, double *start, sbi_err *err)
{
	double *cand = scratch(L, r->ncand * r->d), *ld = scratch(L, r->ncand);
	gsl_rng *g = sbi__push_rng(L, r->seed, SBI_STREAM_METHOD, 2);
	for (size_t i = 0; i < r->ncand; i++)
		sbi_prior_sample(tg->prior, g, cand + i * r->d);
	for (size_t s = 0; s < r->ncand; s += 1000) {
		size_t b = r->ncand - s < 1000 ? r->ncand - s : 1000;
		if (target_logdens(tg, cand + s * r->d, b, r->d, ld + s) != SBI_OK)
			return sbi_err_set(err, SBI_EINVAL, "%s", tg->msg);
	}
	return sbi_mcmc_pick_starts(cand, ld, r->ncand, r->d, r->chains, r->seed, start, err);
}

/* core.mcmc{ prior =, flow = Flow, x = row | loglik = fn, kind, num_samples,
 *   chains, warmup, thin, seed, candidates } -> samples Mat, diagnostics */
static int
l_mcmc(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	target tg = { .L = L };
	lua_getfield(L, 1, "prior"); /* stays: the log-likelihood may clear spec.prior */
	sbi__check_field_udata(L, -1, SBI_MT_PRIOR, "option 'prior'");
	tg.prior = sbi__check_prior(L, -1);
	mcmc_run r = { .d = sbi_prior_dim(tg.prior) };
	const char *kind = opt_str(L, 1, "kind", "slice");
	if (strcmp(kind, "slice") != 0 && strcmp(kind, "ensemble") != 0)
		return luaL_error(L, "unknown sampler '%s' (expected \"slice\" or \"ensemble\")", kind);
	r.kind = strcmp(kind, "slice") == 0 ? SBI_MCMC_SLICE : SBI_MCMC_ENSEMBLE;
	r.chains = (size_t)opt_int(L, 1, "chains", r.kind == SBI_MCMC_SLICE ? 20 : (lua_Integer)(4 * r.d + 4), 1, MAX_SHAPE);
	r.warmup = (size_t)opt_int(L, 1, "warmup", 200, 0, MAX_COUNT);
	r.thin = (size_t)opt_int(L, 1, "thin", 1, 1, MAX_SHAPE);
	r.nsamples = (size_t)opt_int(L, 1, "num_samples", 10000, 1, MAX_COUNT);
	r.ncand = (size_t)opt_int(L, 1, "candidates", 10000, 1, MAX_COUNT);
	r.seed = (uint64_t)opt_int(L, 1, "seed", 1, 0, LUA_MAXINTEGER);
	if (lua_getfield(L, 1, "flow") != LUA_TNIL) {
		sbi__check_field_udata(L, -1, SBI_MT_FLOW, "option 'flow'");
		tg.flow = check_flow(L, -1);
		const sbi_flow_config *cfg = sbi_flow_config_of(tg.flow->f);
		lua_getfield(L, 1, "posterior");
		tg.npe = lua_toboolean(L, -1);
		lua_pop(L, 1);
		size_t dtheta = tg.npe ? cfg->dim : cfg->context, dx = tg.npe ? cfg->context : cfg->dim;
		if (dtheta != r.d)
			return luaL_error(L, "the estimator has %d parameters, the prior has %d", (int)dtheta, (int)r.d);
		lua_getfield(L, 1, "x");
		tg.xobs = sbi__to_vector(L, lua_gettop(L), dx, "the observation");
	} else if (lua_getfield(L, 1, "classifier") != LUA_TNIL) {
		sbi__check_field_udata(L, -1, SBI_MT_CLASSIFIER, "option 'classifier'");
		tg.clsf = check_classifier(L, -1);
		const sbi_classifier_config *cfg = sbi_classifier_config_of(tg.clsf->c);
		if (cfg->dtheta != r.d)
			return luaL_error(L, "the ratio estimator has %d parameters, the prior has %d", (int)cfg->dtheta, (int)r.d);
		lua_getfield(L, 1, "x");
		tg.xobs = sbi__to_vector(L, lua_gettop(L), cfg->dx, "the observation");
	} else {
		lua_getfield(L, 1, "loglik");
		luaL_argcheck(L, lua_isfunction(L, -1), 1, "spec needs 'flow', 'classifier' or a 'loglik' function");
		tg.fn = lua_gettop(L);
	}
	/* One callback evaluates at most 2 x chains points (slice stepping out
	 * on both sides) or 1000 candidates. */
	tg.lp = scratch(L, 2 * r.chains > 1000 ? 2 * r.chains : 1000);
	double *start = scratch(L, r.chains * r.d), *samples = NULL;
	sbi_mat *out = sbi_mat_alloc(r.nsamples, r.d);
	sbi__push_mat(L, out);
	int outi = lua_gettop(L);
	if (out == NULL)
		return luaL_error(L, "out of memory");
	samples = out->data;
	set_threads(L);
	double t0 = sbi_now();
	sbi_err err = { 0 };
	int rc = choose_starts(L, &tg, &r, start, &err);
	sbi_mcmc *m = rc == SBI_OK ? sbi_mcmc_alloc(r.kind, r.d, r.chains, target_logdens, &tg, r.seed, &err) : NULL;
	if (m == NULL && rc == SBI_OK)
		rc = err.code;
	if (rc == SBI_OK)
		rc = sbi_mcmc_init(m, start, &err);
	if (rc == SBI_OK)
		rc = sbi_mcmc_run(m, r.warmup, r.thin, r.nsamples, samples, &err);
	if (rc != SBI_OK) {
		sbi_mcmc_free(m);
		int dup = tg.msg[0] && strstr(err.msg, tg.msg) != NULL;
		return luaL_error(L, "MCMC: %s%s%s", err.msg, tg.msg[0] && !dup ? ": " : "", dup ? "" : tg.msg);
	}
	double *draws = scratch(L, r.nsamples * r.d), *rhat = scratch(L, r.d), *ess = scratch(L, r.d);
	size_t niter = sbi_mcmc_draws_by_chain(samples, r.nsamples, r.chains, r.d, draws);
	sbi_mcmc_rhat(draws, r.chains, niter, r.d, rhat);
	sbi_mcmc_ess(draws, r.chains, niter, r.d, ess);
	lua_pushvalue(L, outi);
	lua_createtable(L, 0, 6);
	push_numbers(L, rhat, r.d);
	lua_setfield(L, -2, "rhat");
	push_numbers(L, ess, r.d);
	lua_setfield(L, -2, "ess");
	lua_pushnumber(L, sbi_mcmc_acceptance(m));
	lua_setfield(L, -2, "acceptance");
	lua_pushinteger(L, (lua_Integer)sbi_mcmc_evaluations(m));
	lua_setfield(L, -2, "evaluations");
	lua_pushnumber(L, sbi_now() - t0);
	lua_setfield(L, -2, "seconds");
	lua_pushinteger(L, (lua_Integer)r.chains);
	lua_setfield(L, -2, "chains");
	sbi_mcmc_free(m);
	return 2;
}

static const luaL_Reg classifier_methods[] = {
	{ "log_ratio", l_classifier_log_ratio }, { "dims", l_classifier_dims }, { NULL, NULL },
};

static const luaL_Reg flow_methods[] = {
	{ "sample", l_flow_sample }, { "log_prob", l_flow_log_prob }, { "dims", l_flow_dims }, { NULL, NULL },
};

void
sbi__open_nn(lua_State *L)
{
	sbi__newmetatable(L, SBI_MT_FLOW); /* [core, mt] */
	lua_pushcfunction(L, l_flow_gc);
	lua_setfield(L, -2, "__gc");
	luaL_newlib(L, flow_methods);
	lua_setfield(L, -2, "__index");
	lua_pop(L, 1);                     /* [core] */
	lua_pushcfunction(L, l_flow_train);
	lua_setfield(L, -2, "flow_train");
	lua_pushcfunction(L, l_flow_train_each);
	lua_setfield(L, -2, "flow_train_each");
	lua_pushcfunction(L, l_flow_load);
	lua_setfield(L, -2, "flow_load");
	lua_pushinteger(L, SBI_FLOW_FORMAT);
	lua_setfield(L, -2, "FLOW_FORMAT");
	lua_pushcfunction(L, l_mcmc);
	lua_setfield(L, -2, "mcmc");
	sbi__newmetatable(L, SBI_MT_CLASSIFIER);
	lua_pushcfunction(L, l_classifier_gc);
	lua_setfield(L, -2, "__gc");
	luaL_newlib(L, classifier_methods);
	lua_setfield(L, -2, "__index");
	lua_pop(L, 1);
	lua_pushcfunction(L, l_classifier_train);
	lua_setfield(L, -2, "classifier_train");
	lua_pushcfunction(L, l_classifier_load);
	lua_setfield(L, -2, "classifier_load");
}
