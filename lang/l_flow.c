/* sbi.Flow for Lua, the conditional density estimators:
 * core.flow_train, core.flow_train_each, core.flow_load and the Flow
 * methods (sample, log_prob, dims). */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "lmpi.h"
#include "lnn.h"
#include "sbi/fit.h"
#include "sbi/rng.h"

#define SBI_MAX_TRAIN_THREADS 64

/* ---- training ---- */

/* One flow to train: read from a Lua spec, then trained without touching
 * Lua (so several can train in threads at once). */
typedef struct flow_job {
	sbi_flow_config cfg;
	sbi_train_opts o;
	const sbi_mat *y, *c; /* borrowed from the spec, whose values stay on the stack */
	sbi_flow_fit_opts fo; /* atoms and log_prior (a Mat on the stack); init set while training */
	const char *init;     /* the warm start's model file (on the stack) or NULL */
	size_t init_len;
	l_trained out;      /* owned by the jobs' box */
	sbi_err err;
	int rc;
} flow_job;

/* Flow jobs in a box, which frees their results when collected or closed,
 * so an error at any point leaks nothing. */
typedef struct flow_jobs {
	size_t n;
	flow_job job[];
} flow_jobs;

/* __gc and __close of the jobs' box. [box] -> [box] */
static int
jobs_free(lua_State *L)
{
	flow_jobs *js = lua_touserdata(L, 1);
	for (size_t i = 0; i < js->n; i++)
		sbi__trained_free(&js->job[i].out);
	return 0;
}

/* [..] -> [.., box] */
static flow_jobs *
push_jobs(lua_State *L, size_t n)
{
	flow_jobs *js = sbi__push_box(L, sizeof *js + n * sizeof js->job[0], "sbi.FlowJobs", jobs_free);
	js->n = n;
	return js;
}

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
read_flow_job(lua_State *L, int spec, flow_job *j)
{
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
run_flow_job(flow_job *j)
{
	sbi_err e = { 0 };
	sbi_flow *init = j->init ? sbi_flow_load((const unsigned char *)j->init, j->init_len, &e) : NULL, *f;
	if (j->init && init == NULL) {
		j->rc = sbi_err_set(&j->err, e.code, "option 'init': %s", e.msg);
		return;
	}
	j->fo.init = init;
	j->rc = sbi_fit_flow_ex(&j->cfg, &j->fo, &j->o, j->y->data, j->c ? j->c->data : NULL, j->y->nrow, &f,
	    &j->out.rep, &j->err);
	j->fo.init = NULL;
	sbi_flow_free(init);
	if (j->rc == SBI_OK)
		j->rc = sbi_flow_save(f, &j->out.blob, &j->out.len, &j->err);
	sbi_flow_free(f);
}

/* core.flow_train(spec) -> model blob (string), report
 * [spec] -> [spec, box, values read, model, report] */
static int
l_flow_train(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	flow_jobs *js = push_jobs(L, 1);
	flow_job *j = &js->job[0];
	read_flow_job(L, 1, j);
	sbi__blas_threads();
	run_flow_job(j);
	if (j->rc != SBI_OK)
		return luaL_error(L, "%s", j->err.msg);
	sbi__push_trained(L, &j->out);
	return 2;
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

/* ---- MPI (lang/l_mpi.c): the flows spread over the ranks, one a task ---- */

static int
train_compute(void *ud, size_t lo, size_t hi, unsigned char **out, size_t *bytes, size_t *failed, sbi_err *err)
{
	flow_job *j = &((flow_jobs *)ud)->job[lo];
	(void)hi; /* blocks of one */
	*failed = lo;
	run_flow_job(j);
	if (j->rc != SBI_OK) {
		*err = j->err;
		return j->rc;
	}
	*out = sbi__trained_pack(&j->out, bytes);
	sbi__trained_free(&j->out);
	return *out ? SBI_OK : sbi_err_set(err, SBI_ENOMEM, "out of memory");
}

static int
train_take(void *ud, size_t lo, size_t hi, const unsigned char *buf, size_t bytes, sbi_err *err)
{
	flow_job *j = &((flow_jobs *)ud)->job[lo];
	(void)hi;
	sbi__trained_free(&j->out);
	int rc = sbi__trained_unpack(buf, bytes, &j->out);
	return rc == SBI_OK ? SBI_OK : sbi_err_set(err, rc, "flow %zu: a malformed result from an MPI rank", lo + 1);
}

static void
run_here(void *ud, size_t threads)
{
	flow_jobs *js = ud;
	run_flow_jobs(js->job, js->n, threads);
}

/* Trains the jobs: on this process's threads, or over the MPI ranks. */
static void
train_jobs(lua_State *L, flow_jobs *js)
{
	sbi_mpi_tasks t = { .ud = js, .what = SBI_MPI_TRAIN, .ntasks = js->n, .block = 1, .prefetch = 1,
		.compute = train_compute, .take = train_take };
	sbi__train_tasks(L, &t, run_here);
}

/* core.flow_train_each({ spec, ... }) -> { { model =, report = }, ... }:
 * trains several flows, min(--jobs, #specs) at a time in threads. Each
 * flow is trained exactly as by core.flow_train, so the results do not
 * depend on --jobs (nor, under MPI, on the ranks that trained them). */
static int
l_flow_train_each(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	lua_Integer n = luaL_len(L, 1);
	luaL_argcheck(L, n >= 1 && n <= 64, 1, "expected 1 to 64 flow specifications");
	flow_jobs *js = push_jobs(L, (size_t)n); /* [specs, box] */
	for (lua_Integer i = 0; i < n; i++) {
		luaL_checkstack(L, 2, "reading flow specifications");
		if (lua_geti(L, 1, i + 1) != LUA_TTABLE)
			luaL_argerror(L, 1, lua_pushfstring(L, "element %I must be a table, got %s", i + 1,
			    luaL_typename(L, -1)));
		read_flow_job(L, lua_gettop(L), &js->job[i]); /* leaves the values it keeps on the stack */
	}
	sbi__blas_threads();
	train_jobs(L, js);
	for (size_t i = 0; i < js->n; i++) /* the first failure; the box frees every result */
		if (js->job[i].rc != SBI_OK)
			return luaL_error(L, "%s", js->job[i].err.msg);
	lua_createtable(L, (int)n, 0);                 /* [.., list] */
	for (size_t i = 0; i < js->n; i++) {
		lua_createtable(L, 0, 2);              /* [.., list, e] */
		sbi__push_trained(L, &js->job[i].out); /* [.., list, e, model, report] */
		lua_setfield(L, -3, "report");
		lua_setfield(L, -2, "model");          /* [.., list, e] */
		lua_rawseti(L, -2, (lua_Integer)i + 1); /* [.., list] */
	}
	return 1;
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
