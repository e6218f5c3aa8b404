/* sbi.Classifier for Lua, the NRE ratio classifiers:
 * core.classifier_train, core.classifier_train_each, core.classifier_load
 * and the Classifier methods (log_ratio, dims). */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "lmpi.h"
#include "lnn.h"
#include "sbi/fit.h"

#define MAX_THREADS 64

/* One classifier to train: read from a Lua spec, then trained without
 * touching Lua (so several can train in threads at once). */
typedef struct clsf_job {
	sbi_classifier_config cfg;
	size_t atoms;
	sbi_train_opts o;
	const sbi_mat *th, *x; /* borrowed from the spec, whose values stay on the stack */
	const char *init;      /* the warm start's model file (on the stack) or NULL */
	size_t init_len;
	l_trained out;         /* owned by the jobs' box */
	sbi_err err;
	int rc;
} clsf_job;

/* Jobs in a box, which frees their results when collected or closed. */
typedef struct clsf_jobs {
	size_t n;
	clsf_job job[];
} clsf_jobs;

/* __gc and __close of the jobs' box. [box] -> [box] */
static int
jobs_free(lua_State *L)
{
	clsf_jobs *js = lua_touserdata(L, 1);
	for (size_t i = 0; i < js->n; i++)
		sbi__trained_free(&js->job[i].out);
	return 0;
}

/* [..] -> [.., box] */
static clsf_jobs *
push_jobs(lua_State *L, size_t n)
{
	clsf_jobs *js = sbi__push_box(L, sizeof *js + n * sizeof js->job[0], "sbi.ClassifierJobs", jobs_free);
	js->n = n;
	return js;
}

/* Reads j from the spec at index spec; every option is required (the
 * stdlib fills the defaults). [..] -> [.., values kept alive while j is used] */
static void
read_job(lua_State *L, int spec, clsf_job *j)
{
	sbi_mat *th = sbi__spec_mat(L, spec, "theta", 1), *x = sbi__spec_mat(L, spec, "x", 1);
	sbi__check_cols(L, th, "theta");
	sbi__check_cols(L, x, "x");
	if (th->nrow != x->nrow)
		luaL_error(L, "theta has %d rows but x has %d", (int)th->nrow, (int)x->nrow);
	sbi_classifier_config *cfg = &j->cfg;
	*cfg = (sbi_classifier_config){ .dtheta = th->ncol, .dx = x->ncol };
	cfg->hidden = (size_t)sbi__spec_int(L, spec, "hidden", 1, SBI_MAX_SHAPE);
	cfg->layers = (size_t)sbi__spec_int(L, spec, "layers", 0, SBI_MAX_SMALL);
	cfg->act = sbi__activation(L, sbi__spec_str(L, spec, "activation"));
	cfg->seed = (uint64_t)sbi__spec_int(L, spec, "seed", 0, LUA_MAXINTEGER);
	cfg->residual = sbi__spec_bool(L, spec, "residual");
	sbi__spec_embed(L, spec, &cfg->embed);
	j->atoms = (size_t)sbi__spec_int(L, spec, "atoms", 0, SBI_MAX_SMALL);
	sbi__train_opts(L, spec, &j->o, cfg->seed);
	j->init = sbi__spec_model(L, spec, "init", &j->init_len);
	j->th = th, j->x = x;
}

/* Trains j into j->out: no Lua calls, no shared state, so jobs may run in
 * parallel threads. */
static void
run_job(clsf_job *j)
{
	sbi_err e = { 0 };
	sbi_classifier *init = j->init ? sbi_classifier_load((const unsigned char *)j->init, j->init_len, &e) : NULL,
		       *c = NULL;
	if (j->init && init == NULL) {
		j->rc = sbi_err_set(&j->err, e.code, "option 'init': %s", e.msg);
		return;
	}
	j->rc = sbi_fit_classifier_ex(&j->cfg, j->atoms, init, &j->o, j->th->data, j->x->data, j->th->nrow, &c,
	    &j->out.rep, &j->err);
	sbi_classifier_free(init);
	if (j->rc == SBI_OK)
		j->rc = sbi_classifier_save(c, &j->out.blob, &j->out.len, &j->err);
	sbi_classifier_free(c);
}

/* core.classifier_train(spec) -> model blob, report
 * [spec] -> [spec, box, values read, model, report] */
static int
l_classifier_train(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	clsf_job *j = &push_jobs(L, 1)->job[0];
	read_job(L, 1, j);
	sbi__blas_threads();
	run_job(j);
	if (j->rc != SBI_OK)
		return luaL_error(L, "%s", j->err.msg);
	sbi__push_trained(L, &j->out);
	return 2;
}

/* ---- several at once: threads, or the MPI ranks (lang/l_mpi.c) ---- */

typedef struct job_queue {
	clsf_job *jobs;
	size_t n;
	atomic_size_t next;
} job_queue;

static void *
queue_worker(void *arg)
{
	job_queue *q = arg;
	for (size_t i; (i = atomic_fetch_add(&q->next, 1)) < q->n;)
		run_job(&q->jobs[i]);
	return NULL;
}

/* Runs the jobs on up to `threads` threads (this one included). */
static void
run_jobs(clsf_job *jobs, size_t n, size_t threads)
{
	job_queue q = { .jobs = jobs, .n = n };
	atomic_init(&q.next, 0);
	pthread_t tid[MAX_THREADS];
	size_t started = 0;
	threads = threads < n ? threads : n;
	threads = threads < MAX_THREADS ? threads : MAX_THREADS;
	for (size_t i = 1; i < threads; i++)
		if (pthread_create(&tid[started], NULL, queue_worker, &q) == 0)
			started++;
	queue_worker(&q);
	for (size_t i = 0; i < started; i++)
		pthread_join(tid[i], NULL);
}

static int
task_compute(void *ud, size_t lo, size_t hi, unsigned char **out, size_t *bytes, size_t *failed, sbi_err *err)
{
	clsf_job *j = &((clsf_jobs *)ud)->job[lo];
	(void)hi; /* blocks of one */
	*failed = lo;
	run_job(j);
	if (j->rc != SBI_OK) {
		*err = j->err;
		return j->rc;
	}
	*out = sbi__trained_pack(&j->out, bytes);
	sbi__trained_free(&j->out);
	return *out ? SBI_OK : sbi_err_set(err, SBI_ENOMEM, "out of memory");
}

static int
task_take(void *ud, size_t lo, size_t hi, const unsigned char *buf, size_t bytes, sbi_err *err)
{
	clsf_job *j = &((clsf_jobs *)ud)->job[lo];
	(void)hi;
	sbi__trained_free(&j->out);
	int rc = sbi__trained_unpack(buf, bytes, &j->out);
	return rc == SBI_OK ? SBI_OK : sbi_err_set(err, rc, "classifier %zu: a malformed result from an MPI rank",
	    lo + 1);
}

static void
run_here(void *ud, size_t threads)
{
	clsf_jobs *js = ud;
	run_jobs(js->job, js->n, threads);
}

/* Trains the jobs: on this process's threads, or over the MPI ranks. */
static void
train_jobs(lua_State *L, clsf_jobs *js)
{
	sbi_mpi_tasks t = { .ud = js, .what = SBI_MPI_TRAIN, .ntasks = js->n, .block = 1, .prefetch = 1,
		.compute = task_compute, .take = task_take };
	sbi__train_tasks(L, &t, run_here);
}

/* core.classifier_train_each({ spec, ... }) -> { { model =, report = }, ... }:
 * trains several classifiers, min(--jobs, #specs) at a time in threads
 * (or over the MPI ranks); each exactly as by core.classifier_train, so
 * the results do not depend on --jobs or the ranks.
 * [specs] -> [specs, box, values read, list] */
static int
l_classifier_train_each(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	lua_Integer n = luaL_len(L, 1);
	luaL_argcheck(L, n >= 1 && n <= 64, 1, "expected 1 to 64 classifier specifications");
	clsf_jobs *js = push_jobs(L, (size_t)n); /* [specs, box] */
	for (lua_Integer i = 0; i < n; i++) {
		luaL_checkstack(L, 2, "reading classifier specifications");
		if (lua_geti(L, 1, i + 1) != LUA_TTABLE)
			luaL_argerror(L, 1, lua_pushfstring(L, "element %I must be a table, got %s", i + 1,
			    luaL_typename(L, -1)));
		read_job(L, lua_gettop(L), &js->job[i]); /* leaves the values it keeps on the stack */
	}
	sbi__blas_threads();
	train_jobs(L, js);
	for (size_t i = 0; i < js->n; i++) /* the first failure; the box frees every result */
		if (js->job[i].rc != SBI_OK)
			return luaL_error(L, "%s", js->job[i].err.msg);
	lua_createtable(L, (int)n, 0);                  /* [.., list] */
	for (size_t i = 0; i < js->n; i++) {
		lua_createtable(L, 0, 2);               /* [.., list, e] */
		sbi__push_trained(L, &js->job[i].out);  /* [.., list, e, model, report] */
		lua_setfield(L, -3, "report");
		lua_setfield(L, -2, "model");           /* [.., list, e] */
		lua_rawseti(L, -2, (lua_Integer)i + 1); /* [.., list] */
	}
	return 1;
}

/* core.classifier_load(blob) -> Classifier */
static int
l_classifier_load(lua_State *L)
{
	return sbi__load_model(L, &sbi__classifier_kind);
}

/* classifier:log_ratio(theta Mat, x row) -> Mat (n x 1) */
static int
l_classifier_log_ratio(lua_State *L)
{
	l_model *lc = sbi__check_model(L, 1, &sbi__classifier_kind);
	const sbi_classifier_config *cfg = sbi_classifier_config_of(lc->m);
	sbi_mat *th = sbi__check_mat(L, 2)->m;
	double *x = sbi__to_vector(L, 3, cfg->dx, "x");
	if (th->ncol != cfg->dtheta)
		return luaL_error(L, "log_ratio: theta needs %d columns", (int)cfg->dtheta);
	sbi_mat *out = sbi__push_new_mat(L, th->nrow, 1);
	sbi_err err = { 0 };
	if (sbi_classifier_log_ratio(lc->m, lc->t, th->data, x, th->nrow, out->data, &err) != SBI_OK)
		return luaL_error(L, "%s", err.msg);
	return 1;
}

/* c:dims() -> dtheta, dx. [c] -> [c, dtheta, dx] */
static int
l_classifier_dims(lua_State *L)
{
	const sbi_classifier_config *cfg = sbi_classifier_config_of(sbi__check_model(L, 1, &sbi__classifier_kind)->m);
	lua_pushinteger(L, (lua_Integer)cfg->dtheta);
	lua_pushinteger(L, (lua_Integer)cfg->dx);
	return 2;
}

/* ---- the kind ---- */

static void *
classifier_load(const unsigned char *blob, size_t len, sbi_err *err)
{
	return sbi_classifier_load(blob, len, err);
}

static void
classifier_free(void *m)
{
	sbi_classifier_free(m);
}

/* "sbi.Classifier(theta 2, x 3)". [..] -> [.., s] */
static void
classifier_name(lua_State *L, const void *m)
{
	const sbi_classifier_config *cfg = sbi_classifier_config_of(m);
	lua_pushfstring(L, SBI_MT_CLASSIFIER "(theta %I, x %I)", (lua_Integer)cfg->dtheta, (lua_Integer)cfg->dx);
}

const l_model_kind sbi__classifier_kind = {
	.tname = SBI_MT_CLASSIFIER,
	.released = "released classifier",
	.load = classifier_load,
	.free = classifier_free,
	.push_name = classifier_name,
};

static const luaL_Reg classifier_methods[] = {
	{ "log_ratio", l_classifier_log_ratio }, { "dims", l_classifier_dims }, { NULL, NULL },
};

static const luaL_Reg classifier_funcs[] = {
	{ "classifier_train", l_classifier_train }, { "classifier_train_each", l_classifier_train_each },
	{ "classifier_load", l_classifier_load }, { NULL, NULL },
};

/* [core] -> [core] */
void
sbi__open_classifier(lua_State *L)
{
	sbi__new_model_type(L, &sbi__classifier_kind, classifier_methods);
	luaL_setfuncs(L, classifier_funcs, 0);
}
