/* Calibration diagnostics: the test-set posteriors of NPE, NLE and NRE and
 * the statistics over them (see diagnose.h). */
#include <gsl/gsl_cdf.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sbi/alloc.h"
#include "sbi/classifier.h"
#include "sbi/diagnose.h"
#include "sbi/flow.h"
#include "sbi/mcmc.h"
#include "sbi/rng.h"

#define EVAL_BATCH 1000   /* points per density call outside the sampler */
#define SAMPLE_BATCH 10000 /* NPE draws per flow call, at most */

struct sbi_diag_worker {
	const sbi_diag_spec *s;
	sbi_flow *flow;       /* NPE, NLE (owned) */
	sbi_classifier *clsf; /* NRE (owned) */
	sbi_tape *t;          /* owned */
	gsl_rng *r;           /* owned */
	const double *x;      /* the current test point's data (borrowed) */
	double *draws;        /* nsamples x d */
	double *lq;           /* max(nsamples, EVAL_BATCH) */
	double *batch;        /* NPE: SAMPLE_BATCH x d; NLE/NRE: by-chain draws, nsamples x d */
	double *cand, *ldcand; /* candidates x d, candidates */
	double *start;        /* chains x d */
	double *rhat;         /* d */
	sbi_err cb_err;       /* the density callback's error */
};

void
sbi_diag_worker_free(sbi_diag_worker *w)
{
	if (w == NULL)
		return;
	sbi_flow_free(w->flow);
	if (w->clsf)
		sbi_classifier_free(w->clsf);
	sbi_tape_free(w->t);
	if (w->r)
		gsl_rng_free(w->r);
	sbi_free(w->draws);
	sbi_free(w->lq);
	sbi_free(w->batch);
	sbi_free(w->cand);
	sbi_free(w->ldcand);
	sbi_free(w->start);
	sbi_free(w->rhat);
	sbi_free(w);
}

static double *
alloc_doubles(size_t n)
{
	return sbi_malloc((n ? n : 1) * sizeof(double));
}

sbi_diag_worker *
sbi_diag_worker_alloc(const sbi_diag_spec *s, sbi_err *err)
{
	if (s->d == 0 || s->nsamples == 0 || (s->kind != SBI_DIAG_NPE && (s->chains == 0 || s->candidates == 0
	    || s->thin == 0))) {
		sbi_err_set(err, SBI_EINVAL, "diagnostics: empty dimension, sample count, chains or candidates");
		return NULL;
	}
	sbi_diag_worker *w = sbi_calloc(1, sizeof *w);
	if (w == NULL) {
		sbi_err_set(err, SBI_ENOMEM, "out of memory");
		return NULL;
	}
	w->s = s;
	if (s->kind == SBI_DIAG_NRE)
		w->clsf = sbi_classifier_load(s->model, s->model_len, err);
	else
		w->flow = sbi_flow_load(s->model, s->model_len, err);
	if (w->clsf == NULL && w->flow == NULL) {
		sbi_diag_worker_free(w);
		return NULL;
	}
	size_t d = s->d, nbatch = s->kind == SBI_DIAG_NPE ? (s->nsamples < SAMPLE_BATCH ? s->nsamples : SAMPLE_BATCH)
								 * d : s->nsamples * d;
	size_t ncand = s->kind == SBI_DIAG_NPE ? 0 : s->candidates;
	w->t = sbi_tape_alloc();
	w->r = sbi_rng_alloc();
	w->draws = alloc_doubles(s->nsamples * d);
	w->lq = alloc_doubles(s->nsamples > EVAL_BATCH ? s->nsamples : EVAL_BATCH);
	w->batch = alloc_doubles(nbatch);
	w->cand = alloc_doubles(ncand * d);
	w->ldcand = alloc_doubles(ncand);
	w->start = alloc_doubles(s->chains * d);
	w->rhat = alloc_doubles(d);
	if (!w->t || !w->r || !w->draws || !w->lq || !w->batch || !w->cand || !w->ldcand || !w->start || !w->rhat) {
		sbi_diag_worker_free(w);
		sbi_err_set(err, SBI_ENOMEM, "out of memory");
		return NULL;
	}
	sbi_tape_set_grad(w->t, 0);
	return w;
}

/* The unnormalized log posterior of NLE or NRE at the n points theta
 * (sbi_logdens_fn): log p(theta) + log q(x | theta) or + log r(theta, x). */
static int
posterior_logdens(void *ud, const double *theta, size_t n, size_t d, double *out)
{
	sbi_diag_worker *w = ud;
	double *lp = w->lq; /* scratch of EVAL_BATCH or more */
	for (size_t s = 0; s < n; s += EVAL_BATCH) {
		size_t b = n - s < EVAL_BATCH ? n - s : EVAL_BATCH;
		int rc = w->clsf ? sbi_classifier_log_ratio(w->clsf, w->t, theta + s * d, w->x, b, lp, &w->cb_err)
				 : sbi_flow_log_prob(w->flow, w->t, w->x, 1, theta + s * d, 0, b, lp, &w->cb_err);
		if (rc != SBI_OK)
			return rc;
		for (size_t i = 0; i < b; i++) {
			double lpr = sbi_prior_log_density(w->s->prior, theta + (s + i) * d);
			out[s + i] = isfinite(lpr) ? lpr + lp[i] : -INFINITY;
		}
	}
	return SBI_OK;
}

double
sbi_diag_hpd_rank(const double *lq, size_t n, double lq_true)
{
	size_t above = 0;
	for (size_t i = 0; i < n; i++)
		above += lq[i] > lq_true;
	return n ? (double)above / (double)n : 0.0;
}

/* The SBC ranks and the TARP fraction of test point i over w->draws. */
static void
rank_stats(sbi_diag_worker *w, size_t i, sbi_diag_point *out)
{
	const sbi_diag_spec *s = w->s;
	size_t d = s->d, n = s->nsamples, closer = 0;
	const double *th = s->theta + i * d, *ref = s->ref + i * d;
	double dtrue = 0;
	for (size_t j = 0; j < d; j++) {
		double z = (th[j] - ref[j]) / s->scale[j];
		dtrue += z * z;
		out->sbc[j] = 0;
	}
	for (size_t k = 0; k < n; k++) {
		const double *p = w->draws + k * d;
		double dist = 0;
		for (size_t j = 0; j < d; j++) {
			double z = (p[j] - ref[j]) / s->scale[j];
			dist += z * z;
			out->sbc[j] += p[j] < th[j];
		}
		closer += dist < dtrue;
	}
	out->tarp = (double)closer / (double)n;
}

/* NPE: nsamples flow draws inside the prior's support and their log q. */
static int
npe_point(sbi_diag_worker *w, size_t i, sbi_diag_point *out, sbi_err *err)
{
	const sbi_diag_spec *s = w->s;
	size_t d = s->d, got = 0, drawn = 0, batch = s->nsamples < SAMPLE_BATCH ? s->nsamples : SAMPLE_BATCH;
	const double *x = s->x + i * s->dx;
	while (got < s->nsamples) {
		if (drawn >= 100 * s->nsamples)
			return sbi_err_set(err, SBI_EINVAL, "test point %zu: fewer than 1%% of the posterior's draws fall "
			    "inside the prior's support", i + 1);
		int rc = sbi_flow_sample(w->flow, w->t, x, batch, w->r, w->batch, err);
		if (rc != SBI_OK)
			return rc;
		drawn += batch;
		for (size_t k = 0; k < batch && got < s->nsamples; k++)
			if (sbi_prior_in_support(s->prior, w->batch + k * d))
				memcpy(w->draws + got++ * d, w->batch + k * d, d * sizeof(double));
	}
	int rc = sbi_flow_log_prob(w->flow, w->t, w->draws, 0, x, 1, s->nsamples, w->lq, err);
	double lq_true;
	if (rc == SBI_OK)
		rc = sbi_flow_log_prob(w->flow, w->t, s->theta + i * d, 0, x, 1, 1, &lq_true, err);
	if (rc != SBI_OK)
		return rc;
	out->hpd = sbi_diag_hpd_rank(w->lq, s->nsamples, lq_true);
	out->rhat = NAN;
	return SBI_OK;
}

/* NLE, NRE: slice sampling of the unnormalized posterior. */
static int
mcmc_point(sbi_diag_worker *w, size_t i, sbi_diag_point *out, sbi_err *err)
{
	const sbi_diag_spec *s = w->s;
	size_t d = s->d, n = s->nsamples;
	w->x = s->x + i * s->dx;
	for (size_t k = 0; k < s->candidates; k++)
		sbi_prior_sample(s->prior, w->r, w->cand + k * d);
	int rc = posterior_logdens(w, w->cand, s->candidates, d, w->ldcand);
	if (rc == SBI_OK)
		rc = sbi_mcmc_pick_starts(w->cand, w->ldcand, s->candidates, d, s->chains, s->seed, i + 1, w->start, err);
	else
		sbi_err_set(err, rc, "%s", w->cb_err.msg);
	if (rc != SBI_OK)
		return rc;
	sbi_mcmc *m = sbi_mcmc_alloc(SBI_MCMC_SLICE, d, s->chains, posterior_logdens, w, s->seed, i + 1, err);
	if (m == NULL)
		return err->code;
	rc = sbi_mcmc_init(m, w->start, err);
	if (rc == SBI_OK)
		rc = sbi_mcmc_run(m, s->warmup, s->thin, n, w->draws, err);
	sbi_mcmc_free(m);
	if (rc != SBI_OK)
		return rc;
	size_t niter = sbi_mcmc_draws_by_chain(w->draws, n, s->chains, d, w->batch);
	sbi_mcmc_rhat(w->batch, s->chains, niter, d, w->rhat);
	out->rhat = 0;
	for (size_t j = 0; j < d; j++)
		out->rhat = w->rhat[j] > out->rhat || isnan(w->rhat[j]) ? w->rhat[j] : out->rhat;
	double lq_true;
	rc = posterior_logdens(w, s->theta + i * d, 1, d, &lq_true);
	for (size_t k = 0; rc == SBI_OK && k < n; k += EVAL_BATCH) {
		size_t b = n - k < EVAL_BATCH ? n - k : EVAL_BATCH;
		/* Into batch: the by-chain copy is no longer needed. */
		rc = posterior_logdens(w, w->draws + k * d, b, d, w->batch + k);
	}
	if (rc != SBI_OK)
		return sbi_err_set(err, rc, "%s", w->cb_err.msg);
	out->hpd = sbi_diag_hpd_rank(w->batch, n, lq_true);
	return SBI_OK;
}

int
sbi_diag_test_point(sbi_diag_worker *w, size_t i, sbi_diag_point *out, sbi_err *err)
{
	if (i >= w->s->ntests)
		return sbi_err_set(err, SBI_EINVAL, "test point %zu of %zu", i + 1, w->s->ntests);
	sbi_rng_set_stream(w->r, w->s->seed, SBI_STREAM_DIAG, i);
	int rc = w->s->kind == SBI_DIAG_NPE ? npe_point(w, i, out, err) : mcmc_point(w, i, out, err);
	if (rc == SBI_OK)
		rank_stats(w, i, out);
	return rc;
}

/* The smallest k with P(K <= k) >= q for K ~ Binomial(n, p). */
static size_t
binomial_quantile(double q, double p, size_t n)
{
	size_t k = 0;
	while (k < n && gsl_cdf_binomial_P((unsigned)k, p, (unsigned)n) < q)
		k++;
	return k;
}

void
sbi_diag_binomial_band(double p, size_t n, double conf, double *lo, double *hi)
{
	double a = (1 - conf) / 2;
	*lo = (double)binomial_quantile(a, p, n) / (double)n;
	*hi = (double)binomial_quantile(1 - a, p, n) / (double)n;
}

double
sbi_diag_chi2_uniform_p(const double *counts, size_t nbins)
{
	double total = 0, stat = 0;
	for (size_t b = 0; b < nbins; b++)
		total += counts[b];
	if (total <= 0 || nbins < 2)
		return 1.0;
	double e = total / (double)nbins;
	for (size_t b = 0; b < nbins; b++)
		stat += (counts[b] - e) * (counts[b] - e) / e;
	return gsl_cdf_chisq_Q(stat, (double)(nbins - 1));
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

double
sbi_diag_ks_uniform_p(double *u, size_t n)
{
	if (n == 0)
		return 1.0;
	qsort(u, n, sizeof *u, cmp_double);
	double dmax = 0, nn = (double)n;
	for (size_t i = 0; i < n; i++) {
		double a = (double)(i + 1) / nn - u[i], b = u[i] - (double)i / nn;
		dmax = a > dmax ? a : dmax;
		dmax = b > dmax ? b : dmax;
	}
	/* Kolmogorov's limiting distribution at (sqrt n + 0.12 + 0.11 / sqrt n) D. */
	double t = (sqrt(nn) + 0.12 + 0.11 / sqrt(nn)) * dmax, p = 0;
	if (t < 0.2)
		return 1.0;
	for (int k = 1; k <= 100; k++) {
		double term = 2 * ((k & 1) ? 1 : -1) * exp(-2.0 * k * k * t * t);
		p += term;
		if (fabs(term) < 1e-12)
			break;
	}
	return p < 0 ? 0 : p > 1 ? 1 : p;
}
