/* Part of sbi.core: the calibration diagnostics' heavy parts
 * (engine/infer/diagnose.c): core.diagnose_ranks samples the test-set
 * posteriors of a trained NPE, NLE or NRE estimator on min(--jobs, tests)
 * threads, and under MPI over the ranks too (lang/l_mpi.c); core.binomial_band, core.chi2_uniform_p and core.ks_uniform_p
 * are the tests over them. */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "lmpi.h"
#include "lnn.h"
#include "sbi/alloc.h"
#include "sbi/diagnose.h"

#define SBI_MAX_DIAG_THREADS 64

/* The test points to run and their results. */
typedef struct diag_run {
	sbi_diag_spec spec;
	double *hpd, *tarp, *rhat, *sbc; /* results, in Mats on the stack */
	atomic_size_t next;
	/* The failure of the lowest-numbered failing test point, so the message
	 * does not depend on the threads. */
	pthread_mutex_t mu;
	size_t fail_at;
	sbi_err err;
} diag_run;

static void
record_failure(diag_run *r, size_t i, const sbi_err *e)
{
	pthread_mutex_lock(&r->mu);
	if (i < r->fail_at) {
		r->fail_at = i;
		r->err = *e;
	}
	pthread_mutex_unlock(&r->mu);
}

/* A thread: takes test points until none is left (or one failed). */
static void *
diag_worker(void *arg)
{
	diag_run *r = arg;
	sbi_err e = { 0 };
	sbi_diag_worker *w = sbi_diag_worker_alloc(&r->spec, &e);
	if (w == NULL) {
		record_failure(r, 0, &e);
		return NULL;
	}
	size_t d = r->spec.d;
	for (size_t i; (i = atomic_fetch_add(&r->next, 1)) < r->spec.ntests;) {
		sbi_diag_point p = { .sbc = r->sbc + i * d };
		if (sbi_diag_test_point(w, i, &p, &e) != SBI_OK) {
			record_failure(r, i, &e);
			atomic_store(&r->next, r->spec.ntests);
			break;
		}
		r->hpd[i] = p.hpd;
		r->tarp[i] = p.tarp;
		r->rhat[i] = p.rhat;
	}
	sbi_diag_worker_free(w);
	return NULL;
}

static void
run_threads(diag_run *r, size_t threads)
{
	pthread_t tid[SBI_MAX_DIAG_THREADS];
	size_t started = 0;
	threads = threads < r->spec.ntests ? threads : r->spec.ntests;
	threads = threads < SBI_MAX_DIAG_THREADS ? threads : SBI_MAX_DIAG_THREADS;
	for (size_t i = 1; i < threads; i++)
		if (pthread_create(&tid[started], NULL, diag_worker, r) == 0)
			started++;
	diag_worker(r);
	for (size_t i = 0; i < started; i++)
		pthread_join(tid[i], NULL);
}

/* ---- MPI (lang/l_mpi.c): test points spread over the ranks ----
 *
 * A block's result: per test point hpd, tarp, rhat and its d SBC ranks. */

static int
diag_compute(void *ud, size_t lo, size_t hi, unsigned char **out, size_t *bytes, size_t *failed, sbi_err *err)
{
	diag_run *r = ud;
	size_t d = r->spec.d, row = 3 + d;
	*failed = lo;
	double *buf = sbi_malloc((hi - lo) * row * sizeof(double));
	if (buf == NULL)
		return sbi_err_set(err, SBI_ENOMEM, "out of memory");
	sbi_diag_worker *w = sbi_diag_worker_alloc(&r->spec, err);
	if (w == NULL) {
		sbi_free(buf);
		return err->code;
	}
	int rc = SBI_OK;
	for (size_t i = lo; i < hi && rc == SBI_OK; i++) {
		double *o = buf + (i - lo) * row;
		sbi_diag_point p = { .sbc = o + 3 };
		if ((rc = sbi_diag_test_point(w, i, &p, err)) != SBI_OK)
			*failed = i;
		o[0] = p.hpd, o[1] = p.tarp, o[2] = p.rhat;
	}
	sbi_diag_worker_free(w);
	if (rc != SBI_OK) {
		sbi_free(buf);
		return rc;
	}
	*out = (unsigned char *)buf;
	*bytes = (hi - lo) * row * sizeof(double);
	return SBI_OK;
}

static int
diag_take(void *ud, size_t lo, size_t hi, const unsigned char *buf, size_t bytes, sbi_err *err)
{
	diag_run *r = ud;
	size_t d = r->spec.d, row = 3 + d;
	if (bytes != (hi - lo) * row * sizeof(double))
		return sbi_err_set(err, SBI_EINVAL, "test points %zu to %zu: a result of the wrong size", lo + 1, hi);
	for (size_t i = lo; i < hi; i++) {
		double o[3];
		const unsigned char *p = buf + (i - lo) * row * sizeof(double);
		memcpy(o, p, sizeof o);
		r->hpd[i] = o[0], r->tarp[i] = o[1], r->rhat[i] = o[2];
		memcpy(r->sbc + i * d, p + sizeof o, d * sizeof(double));
	}
	return SBI_OK;
}

/* Test points in blocks: about 8 per rank and thread, so a slow rank
 * holds few back, and at most 64 points, so a block's message stays small. */
static sbi_mpi_tasks
diag_tasks(diag_run *r, int jobs)
{
	size_t per = (size_t)sbi__mpi_size() * (size_t)(jobs > 1 ? jobs : 1) * 8;
	size_t block = r->spec.ntests / per;
	block = block < 1 ? 1 : block > 64 ? 64 : block;
	return (sbi_mpi_tasks){ .ud = r, .what = SBI_MPI_DIAG, .ntasks = r->spec.ntests, .block = block,
		.prefetch = 2, .threads = jobs, .compute = diag_compute, .take = diag_take };
}

/* Runs every test point: on this process's threads, or over the MPI ranks
 * (a rank other than 0 serves rank 0's blocks, then unwinds the step). */
static void
run_points(lua_State *L, diag_run *r)
{
	sbi_runctx *ctx = sbi__runctx(L);
	int jobs = ctx && ctx->jobs > 1 ? ctx->jobs : 1;
	sbi_err err = { 0 };
	if (ctx && ctx->node && !ctx->in_simulator && sbi__mpi_in_job(SBI_MPI_DIAG)) {
		sbi_mpi_tasks t = diag_tasks(r, jobs);
		if (sbi__mpi_serve_tasks(&t, &err) != SBI_OK)
			luaL_error(L, "%s", err.msg);
		luaL_error(L, "(the MPI job ended)");
	}
	if (ctx && sbi__mpi_distributes(ctx)) {
		sbi_mpi_tasks t = diag_tasks(r, jobs);
		if (sbi__mpi_run_tasks(ctx, &t, &err) != SBI_OK) {
			r->fail_at = 0;
			r->err = err;
		}
		return;
	}
	run_threads(r, (size_t)jobs);
}

/* A matrix option of n rows and cols columns. [..] -> [.., m] */
static const double *
spec_rows(lua_State *L, int spec, const char *k, size_t n, size_t cols)
{
	sbi_mat *m = sbi__spec_mat(L, spec, k, 1);
	if ((n && m->nrow != n) || m->ncol != cols)
		luaL_error(L, "option '%s' is %d x %d, expected %d x %d", k, (int)m->nrow, (int)m->ncol, (int)n,
		    (int)cols);
	return m->data;
}

/* core.diagnose_ranks{ kind = "npe"|"nle"|"nre", model = string, prior =, theta = Mat, x = Mat,
 *   ref = Mat, scale = Mat (1 x d), samples =, seed = [, chains =, warmup =, thin =, candidates =] }
 *   -> hpd, sbc, tarp, rhat (Mats: tests x 1, tests x d, tests x 1, tests x 1)
 * [spec] -> [spec, values read, hpd, sbc, tarp, rhat] */
static int
l_diagnose_ranks(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	sbi_diag_spec s = { 0 };
	const char *kind = sbi__spec_str(L, 1, "kind");
	if (strcmp(kind, "npe") != 0 && strcmp(kind, "nle") != 0 && strcmp(kind, "nre") != 0)
		return luaL_error(L, "unknown estimator kind '%s' (expected \"npe\", \"nle\" or \"nre\")", kind);
	s.kind = kind[1] == 'p' ? SBI_DIAG_NPE : kind[1] == 'l' ? SBI_DIAG_NLE : SBI_DIAG_NRE;
	s.model = (const unsigned char *)sbi__spec_model(L, 1, "model", &s.model_len);
	if (s.model == NULL)
		return luaL_error(L, "option 'model' (the trained model) is required");
	lua_getfield(L, 1, "prior");
	sbi__check_field_udata(L, -1, SBI_MT_PRIOR, "option 'prior'");
	s.prior = sbi__check_prior(L, -1);
	s.d = sbi_prior_dim(s.prior);
	sbi_mat *theta = sbi__spec_mat(L, 1, "theta", 1), *x = sbi__spec_mat(L, 1, "x", 1);
	s.ntests = theta->nrow;
	if (s.ntests == 0 || theta->ncol != s.d || x->nrow != s.ntests)
		return luaL_error(L, "options 'theta' and 'x' need the same number of rows (at least 1), and 'theta' "
		    "one column per parameter (%d)", (int)s.d);
	s.theta = theta->data;
	s.x = x->data;
	s.dx = x->ncol;
	s.ref = spec_rows(L, 1, "ref", s.ntests, s.d);
	s.scale = spec_rows(L, 1, "scale", 1, s.d);
	s.nsamples = (size_t)sbi__spec_int(L, 1, "samples", 1, SBI_MAX_COUNT);
	s.seed = (uint64_t)sbi__spec_int(L, 1, "seed", 0, LUA_MAXINTEGER);
	if (s.kind != SBI_DIAG_NPE) {
		s.chains = (size_t)sbi__spec_int(L, 1, "chains", 1, SBI_MAX_SHAPE);
		s.warmup = (size_t)sbi__spec_int(L, 1, "warmup", 0, SBI_MAX_COUNT);
		s.thin = (size_t)sbi__spec_int(L, 1, "thin", 1, SBI_MAX_SHAPE);
		s.candidates = (size_t)sbi__spec_int(L, 1, "candidates", 1, SBI_MAX_COUNT);
	}
	diag_run *r = lua_newuserdatauv(L, sizeof *r, 0); /* no __gc: holds only borrowed pointers */
	memset(r, 0, sizeof *r);
	r->spec = s;
	r->hpd = sbi__push_new_mat(L, s.ntests, 1)->data;
	r->sbc = sbi__push_new_mat(L, s.ntests, s.d)->data;
	r->tarp = sbi__push_new_mat(L, s.ntests, 1)->data;
	r->rhat = sbi__push_new_mat(L, s.ntests, 1)->data;
	atomic_init(&r->next, 0);
	r->fail_at = s.ntests;
	pthread_mutex_init(&r->mu, NULL);
	sbi__blas_threads();
	run_points(L, r);
	pthread_mutex_destroy(&r->mu);
	if (r->fail_at < s.ntests || r->err.code != SBI_OK)
		return luaL_error(L, "%s", r->err.msg);
	return 4;
}

/* core.binomial_band(level, n, confidence) -> lower, upper: where a
 * calibrated estimator's coverage at level falls over n tests */
static int
l_binomial_band(lua_State *L)
{
	double p = luaL_checknumber(L, 1);
	lua_Integer n = luaL_checkinteger(L, 2);
	double conf = luaL_checknumber(L, 3);
	luaL_argcheck(L, p >= 0 && p <= 1, 1, "the level must lie in [0, 1]");
	luaL_argcheck(L, n >= 1 && n <= 100000000, 2, "the number of tests must be from 1 to 10^8");
	luaL_argcheck(L, conf > 0 && conf < 1, 3, "the confidence must lie strictly between 0 and 1");
	double lo, hi;
	sbi_diag_binomial_band(p, (size_t)n, conf, &lo, &hi);
	lua_pushnumber(L, lo);
	lua_pushnumber(L, hi);
	return 2;
}

/* core.chi2_uniform_p({ counts }) -> p */
static int
l_chi2_uniform_p(lua_State *L)
{
	size_t n = (size_t)luaL_len(L, 1);
	luaL_argcheck(L, n >= 1, 1, "expected a non-empty list of counts");
	double *c = sbi__to_vector(L, 1, n, "the counts");
	lua_pushnumber(L, sbi_diag_chi2_uniform_p(c, n));
	return 1;
}

/* core.ks_uniform_p({ values in [0, 1] }) -> p */
static int
l_ks_uniform_p(lua_State *L)
{
	size_t n = (size_t)luaL_len(L, 1);
	luaL_argcheck(L, n >= 1, 1, "expected a non-empty list of values");
	double *u = sbi__to_vector(L, 1, n, "the values");
	lua_pushnumber(L, sbi_diag_ks_uniform_p(u, n));
	return 1;
}

static const luaL_Reg diagnose_funcs[] = {
	{ "diagnose_ranks", l_diagnose_ranks }, { "binomial_band", l_binomial_band },
	{ "chi2_uniform_p", l_chi2_uniform_p }, { "ks_uniform_p", l_ks_uniform_p }, { NULL, NULL },
};

/* [core] -> [core] */
void
sbi__open_diagnose(lua_State *L)
{
	luaL_setfuncs(L, diagnose_funcs, 0);
}
