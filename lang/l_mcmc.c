/* core.mcmc for Lua: samples a posterior with the engine's samplers
 * (engine/infer/mcmc.c), evaluating a flow (NLE, or NPE restricted to the prior
 * support), a classifier (NRE) or a Lua log-likelihood under the prior. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "lnn.h"
#include "lstate.h"
#include "sbi/mcmc.h"
#include "sbi/progress.h"
#include "sbi/rng.h"

typedef struct target {
	lua_State *L;
	sbi_prior *prior;
	l_model *flow;      /* NLE: log q(x_obs | theta) */
	l_model *clsf;      /* NRE: log r(theta, x_obs) */
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
		if (sbi_classifier_log_ratio(tg->clsf->m, tg->clsf->t, theta, tg->xobs, n, tg->lp, &err) != SBI_OK) {
			memcpy(tg->msg, err.msg, sizeof err.msg);
			return SBI_ENOMEM;
		}
		for (size_t i = 0; i < n; i++)
			out[i] += tg->lp[i];
		return SBI_OK;
	}
	if (tg->flow) {
		sbi_err err = { 0 };
		int rc = tg->npe ? sbi_flow_log_prob(tg->flow->m, tg->flow->t, theta, 0, tg->xobs, 1, n, tg->lp, &err)
				 : sbi_flow_log_prob(tg->flow->m, tg->flow->t, tg->xobs, 1, theta, 0, n, tg->lp, &err);
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

typedef struct mcmc_run {
	sbi_mcmc_kind kind;
	size_t d, chains, warmup, thin, nsamples, ncand;
	uint64_t seed, round;
} mcmc_run;

/* Starts: the chains' starting points chosen among prior draws by their
 * posterior density (sbi's "resample" initialization). */
static int
choose_starts(lua_State *L, target *tg, const mcmc_run *r, double *start, sbi_err *err)
{
	double *cand = sbi__scratch(L, r->ncand * r->d), *ld = sbi__scratch(L, r->ncand);
	gsl_rng *g = sbi__push_rng(L, r->seed, sbi_rng_round_purpose(SBI_STREAM_METHOD, r->round), 2);
	for (size_t i = 0; i < r->ncand; i++)
		sbi_prior_sample(tg->prior, g, cand + i * r->d);
	for (size_t s = 0; s < r->ncand; s += 1000) {
		size_t b = r->ncand - s < 1000 ? r->ncand - s : 1000;
		if (target_logdens(tg, cand + s * r->d, b, r->d, ld + s) != SBI_OK)
			return sbi_err_set(err, SBI_EINVAL, "%s", tg->msg);
	}
	return sbi_mcmc_pick_starts(cand, ld, r->ncand, r->d, r->chains, r->seed, r->round, start, err);
}

/* __gc and __close of the sampler's box. [box] -> [box] */
static int
mcmc_box_free(lua_State *L)
{
	sbi_mcmc **box = lua_touserdata(L, 1);
	sbi_mcmc_free(*box);
	*box = NULL;
	return 0;
}

/* Pushes the number of chains in each mode (sbi_mcmc_modes) as a list and
 * returns the R-hat within the modes. Raises on out of memory. */
static double
push_mode_chains(lua_State *L, const double *draws, size_t chains, size_t niter, size_t d)
{
	size_t *mode = lua_newuserdatauv(L, chains * sizeof *mode, 0); /* owned by Lua */
	double within;
	size_t nmodes = sbi_mcmc_modes(draws, chains, niter, d, mode, &within);

	if (nmodes == 0)
		luaL_error(L, "core.mcmc: out of memory");
	lua_createtable(L, (int)nmodes, 0);
	for (size_t k = 0; k < nmodes; k++) {
		lua_Integer n = 0;
		for (size_t c = 0; c < chains; c++)
			n += mode[c] == k;
		lua_pushinteger(L, n);
		lua_rawseti(L, -2, (lua_Integer)k + 1);
	}
	lua_remove(L, -2); /* the labels */
	return within;
}

/* core.mcmc{ prior =, flow = Flow, posterior =, x = row | classifier =, x = row
 *   | loglik = fn, kind, num_samples, chains, warmup, thin, seed, candidates [, round] }
 *   -> samples Mat, diagnostics */
static int
l_mcmc(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	target tg = { .L = L };
	lua_getfield(L, 1, "prior"); /* stays: the log-likelihood may clear spec.prior */
	sbi__check_field_udata(L, -1, SBI_MT_PRIOR, "option 'prior'");
	tg.prior = sbi__check_prior(L, -1);
	mcmc_run r = { .d = sbi_prior_dim(tg.prior) };
	/* Every option is required: the stdlib fills the defaults. */
	const char *kind = sbi__spec_str(L, 1, "kind");
	if (strcmp(kind, "slice") != 0 && strcmp(kind, "ensemble") != 0)
		return luaL_error(L, "unknown sampler '%s' (expected \"slice\" or \"ensemble\")", kind);
	r.kind = strcmp(kind, "slice") == 0 ? SBI_MCMC_SLICE : SBI_MCMC_ENSEMBLE;
	r.chains = (size_t)sbi__spec_int(L, 1, "chains", 1, SBI_MAX_SHAPE);
	r.warmup = (size_t)sbi__spec_int(L, 1, "warmup", 0, SBI_MAX_COUNT);
	r.thin = (size_t)sbi__spec_int(L, 1, "thin", 1, SBI_MAX_SHAPE);
	r.nsamples = (size_t)sbi__spec_int(L, 1, "num_samples", 1, SBI_MAX_COUNT);
	r.ncand = (size_t)sbi__spec_int(L, 1, "candidates", 1, SBI_MAX_COUNT);
	r.seed = (uint64_t)sbi__spec_int(L, 1, "seed", 0, LUA_MAXINTEGER);
	/* Optional: the round of sequential inference whose streams to use. */
	if (lua_getfield(L, 1, "round") != LUA_TNIL)
		r.round = (uint64_t)sbi__spec_int(L, 1, "round", 0, SBI_RNG_MAX_ROUND);
	lua_pop(L, 1);
	if (lua_getfield(L, 1, "flow") != LUA_TNIL) {
		sbi__check_field_udata(L, -1, SBI_MT_FLOW, "option 'flow'");
		tg.flow = sbi__check_model(L, -1, &sbi__flow_kind);
		const sbi_flow_config *cfg = sbi_flow_config_of(tg.flow->m);
		tg.npe = sbi__spec_bool(L, 1, "posterior");
		size_t dtheta = tg.npe ? cfg->dim : cfg->context, dx = tg.npe ? cfg->context : cfg->dim;
		if (dtheta != r.d)
			return luaL_error(L, "the estimator has %d parameters, the prior has %d", (int)dtheta, (int)r.d);
		lua_getfield(L, 1, "x");
		tg.xobs = sbi__to_vector(L, lua_gettop(L), dx, "the observation");
	} else if (lua_getfield(L, 1, "classifier") != LUA_TNIL) {
		sbi__check_field_udata(L, -1, SBI_MT_CLASSIFIER, "option 'classifier'");
		tg.clsf = sbi__check_model(L, -1, &sbi__classifier_kind);
		const sbi_classifier_config *cfg = sbi_classifier_config_of(tg.clsf->m);
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
	tg.lp = sbi__scratch(L, 2 * r.chains > 1000 ? 2 * r.chains : 1000);
	double *start = sbi__scratch(L, r.chains * r.d), *samples = NULL;
	sbi_mat *out = sbi__push_new_mat(L, r.nsamples, r.d);
	int outi = lua_gettop(L);
	samples = out->data;
	sbi__blas_threads();
	double t0 = sbi_now();
	sbi_err err = { 0 };
	/* The sampler lives in a box: the callbacks and the results below may
	 * raise, and the box frees it then. */
	sbi_mcmc **box = sbi__push_box(L, sizeof *box, "sbi.McmcBox", mcmc_box_free); /* [.., box] */
	int rc = choose_starts(L, &tg, &r, start, &err);
	sbi_mcmc *m = rc == SBI_OK ? sbi_mcmc_alloc(r.kind, r.d, r.chains, target_logdens, &tg, r.seed, r.round, &err) : NULL;
	*box = m;
	if (m == NULL && rc == SBI_OK)
		rc = err.code;
	if (rc == SBI_OK)
		rc = sbi_mcmc_init(m, start, &err);
	if (rc == SBI_OK)
		rc = sbi_mcmc_run(m, r.warmup, r.thin, r.nsamples, samples, &err);
	if (rc != SBI_OK) {
		int dup = tg.msg[0] && strstr(err.msg, tg.msg) != NULL;
		return luaL_error(L, "MCMC: %s%s%s", err.msg, tg.msg[0] && !dup ? ": " : "", dup ? "" : tg.msg);
	}
	double *draws = sbi__scratch(L, r.nsamples * r.d), *rhat = sbi__scratch(L, r.d), *ess = sbi__scratch(L, r.d);
	size_t niter = sbi_mcmc_draws_by_chain(samples, r.nsamples, r.chains, r.d, draws);
	sbi_mcmc_rhat(draws, r.chains, niter, r.d, rhat);
	sbi_mcmc_ess(draws, r.chains, niter, r.d, ess);
	luaL_checkstack(L, 6, "core.mcmc");
	lua_pushvalue(L, outi);
	lua_createtable(L, 0, 8);
	double rhat_within = push_mode_chains(L, draws, r.chains, niter, r.d);
	lua_setfield(L, -2, "mode_chains");
	lua_pushnumber(L, rhat_within);
	lua_setfield(L, -2, "rhat_within");
	sbi__push_numbers(L, rhat, r.d);
	lua_setfield(L, -2, "rhat");
	sbi__push_numbers(L, ess, r.d);
	lua_setfield(L, -2, "ess");
	lua_pushnumber(L, sbi_mcmc_acceptance(m));
	lua_setfield(L, -2, "acceptance");
	lua_pushinteger(L, (lua_Integer)sbi_mcmc_evaluations(m));
	lua_setfield(L, -2, "evaluations");
	lua_pushnumber(L, sbi_now() - t0);
	lua_setfield(L, -2, "seconds");
	lua_pushinteger(L, (lua_Integer)r.chains);
	lua_setfield(L, -2, "chains");
	sbi_mcmc_free(m); /* now rather than when the box is collected */
	*box = NULL;
	return 2;
}

/* [core] -> [core] */
void
sbi__open_mcmc(lua_State *L)
{
	lua_pushcfunction(L, l_mcmc);
	lua_setfield(L, -2, "mcmc");
}
