/* Batched MCMC samplers and their diagnostics (see mcmc.h).
 *
 * Slice sampling (Neal 2003, section 4) updates coordinate j of every chain
 * at once. Each chain draws its level logy = logp(x) + log U, places a
 * bracket of width w_j at random around x_j and splits a budget of
 * SLICE_MAX_STEPS - 1 expansions at random between the two ends (Neal's
 * limited stepping out, which keeps detailed balance). Then, until no chain
 * is left: the ends of all chains still stepping out are evaluated in one
 * callback (both sides together) and moved out by w_j while inside the
 * slice. Shrinkage is batched the same way: each remaining chain draws a
 * point in its bracket, one callback evaluates them all, and each chain
 * accepts or shrinks its bracket towards x_j. A chain still rejecting after
 * SLICE_MAX_SHRINK draws keeps its point and counts a failure; since x_j
 * itself is in the slice, that only happens when the density changes
 * between evaluations (a noisy estimate), so the cap guards the run time.
 * The slice is {x : logp(x) >= logy}, in both stages.
 *
 * Width adaptation (warm-up only) uses the rule of Karamanis and Beutler
 * (2021, zeus): after each coordinate update, w_j *= 2 ne / (ne + nc), with
 * ne expansions and nc contractions over all chains, clamped to [1/2, 2].
 * Too narrow a bracket expands more than it contracts and grows; too wide a
 * one contracts and shrinks, geometrically in both directions, so a bad
 * start (1e6 times too wide or narrow) costs about 20 sweeps. Bracket
 * length averaging (sbi's SliceSampler) only grows widths, which a wide
 * start never corrects.
 *
 * The ensemble sampler is Goodman and Weare's (2010) stretch move in the
 * split form of emcee (Foreman-Mackey et al. 2013): walkers [0, n/2) move
 * using walkers [n/2, n) and then the reverse, each half in one callback.
 * Walker k proposes y = x_j + z (x_k - x_j) with x_j drawn from the other
 * half and z from g(z) ~ 1/sqrt(z) on [1/a, a], and accepts with
 * probability min(1, z^(d-1) p(y) / p(x_k)).
 *
 * All buffers are allocated in sbi_mcmc_alloc; iterate allocates nothing. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_rng.h>

#include "sbi/alloc.h"
#include "sbi/mcmc.h"
#include "sbi/rng.h"

#define SLICE_MAX_STEPS 50   /* Neal's m: a bracket spans at most 50 widths */
#define SLICE_MAX_SHRINK 200 /* draws per coordinate update before giving up */
#define STRETCH_A 2.0        /* Goodman and Weare's a */
#define STREAM_SAMPLER 0     /* index of the sampler's stream */
#define STREAM_STARTS 1      /* index of sbi_mcmc_pick_starts' stream */
#define DEGENERATE_TOL 1e-10 /* relative pivot below which starts are collinear */

struct sbi_mcmc {
	sbi_mcmc_kind kind;
	size_t d, n;              /* dimension, chains */
	sbi_logdens_fn f;
	void *ud;
	gsl_rng *rng;
	int ready;                /* sbi_mcmc_init succeeded */
	int adapt;
	uint64_t nevals, ncalls, sweeps;
	uint64_t updates, moved;  /* for sbi_mcmc_acceptance */
	double *buf;              /* the one allocation behind the arrays below */
	double *x, *lp;           /* n x d positions, n log densities */
	double *w;                /* d slice widths */
	double *pts, *out;        /* a batch: up to 2n points and their values */
	double *lo, *hi, *logy;   /* n slice brackets and levels; lo holds z for the ensemble */
	double *scratch;          /* ensemble: d x d, for the degeneracy check */
	size_t *ibuf;             /* the one allocation behind the arrays below */
	size_t *who;              /* 2n: the chain (+ n for a right end) of each batch point */
	size_t *budget;           /* 2n: expansions left at the left (c) and right (n + c) end */
	size_t *act;              /* n: chains still shrinking */
};

const char *
sbi_mcmc_kind_name(sbi_mcmc_kind kind)
{
	return kind == SBI_MCMC_SLICE ? "slice" : kind == SBI_MCMC_ENSEMBLE ? "ensemble" : "?";
}

/* ---- construction ---- */

sbi_mcmc *
sbi_mcmc_alloc(sbi_mcmc_kind kind, size_t d, size_t nchains, sbi_logdens_fn f, void *ud,
    uint64_t seed, uint64_t round, sbi_err *err)
{
	size_t n = nchains, nd, ndouble;

	if (kind != SBI_MCMC_SLICE && kind != SBI_MCMC_ENSEMBLE) {
		sbi_err_set(err, SBI_EINVAL, "mcmc: unknown sampler kind %d", (int)kind);
		return NULL;
	}
	const char *name = sbi_mcmc_kind_name(kind);
	if (d == 0 || n == 0 || f == NULL) {
		sbi_err_set(err, SBI_EINVAL, "mcmc.%s: %s", name,
		    f == NULL ? "the log density callback is missing" :
		    d == 0 ? "dimension must be at least 1" : "nchains must be at least 1");
		return NULL;
	}
	if (kind == SBI_MCMC_ENSEMBLE && (d > (SIZE_MAX - 2) / 2 || n < 2 * d + 2)) {
		sbi_err_set(err, SBI_EINVAL,
		    "mcmc.ensemble: nchains = %zu walkers is too few for dimension %zu: each half "
		    "of the ensemble must span the space, so at least 2 d + 2 = %zu walkers are needed",
		    n, d, d > (SIZE_MAX - 2) / 2 ? SIZE_MAX : 2 * d + 2);
		return NULL;
	}
	/* x, pts: 3 n d; lp, out, lo, hi, logy: 6 n; w: d; scratch (ensemble): d d. */
	size_t max = SIZE_MAX / sizeof(double) / 4;
	if (n > max / d || d > max / d || n > max / 8) {
		sbi_err_set(err, SBI_ENOMEM, "mcmc.%s: %zu chains x %zu dimensions is too large",
		    name, n, d);
		return NULL;
	}
	nd = n * d;
	ndouble = 3 * nd + 6 * n + d + (kind == SBI_MCMC_ENSEMBLE ? d * d : 0);

	sbi_mcmc *m = sbi_calloc(1, sizeof *m);
	if (m == NULL || (m->buf = sbi_calloc(ndouble, sizeof(double))) == NULL ||
	    (m->ibuf = sbi_calloc(5 * n, sizeof(size_t))) == NULL ||
	    (m->rng = sbi_rng_alloc()) == NULL) {
		sbi_mcmc_free(m);
		sbi_err_set(err, SBI_ENOMEM, "mcmc.%s: out of memory for %zu chains x %zu dimensions",
		    name, n, d);
		return NULL;
	}
	m->kind = kind;
	m->d = d;
	m->n = n;
	m->f = f;
	m->ud = ud;
	m->x = m->buf;
	m->pts = m->x + nd;
	m->lp = m->pts + 2 * nd;
	m->out = m->lp + n;
	m->lo = m->out + 2 * n;
	m->hi = m->lo + n;
	m->logy = m->hi + n;
	m->w = m->logy + n;
	m->scratch = m->w + d;
	m->who = m->ibuf;
	m->budget = m->who + 2 * n;
	m->act = m->budget + 2 * n;
	sbi_rng_set_stream(m->rng, seed, sbi_rng_round_purpose(SBI_STREAM_METHOD, round), STREAM_SAMPLER);
	return m;
}

void
sbi_mcmc_free(sbi_mcmc *m)
{
	if (m == NULL)
		return;
	if (m->rng != NULL)
		gsl_rng_free(m->rng);
	sbi_free(m->ibuf);
	sbi_free(m->buf);
	sbi_free(m);
}

/* ---- evaluation ---- */

/* Evaluates the k points in m->pts into m->out. NaN becomes -INFINITY. */
static int
eval(sbi_mcmc *m, size_t k, sbi_err *err)
{
	const char *name = sbi_mcmc_kind_name(m->kind);
	int rc = m->f(m->ud, m->pts, k, m->d, m->out);

	m->ncalls++;
	m->nevals += k;
	if (rc != SBI_OK)
		return sbi_err_set(err, rc < 0 ? rc : SBI_EINVAL,
		    "mcmc.%s: the log density callback failed with code %d (%s) in sweep %llu",
		    name, rc, sbi_rc_name(rc), (unsigned long long)m->sweeps + 1);
	for (size_t i = 0; i < k; i++) {
		if (isnan(m->out[i]))
			m->out[i] = -INFINITY;
		else if (m->out[i] == INFINITY)
			return sbi_err_set(err, SBI_EINVAL,
			    "mcmc.%s: the log density is +inf at a point in sweep %llu",
			    name, (unsigned long long)m->sweeps + 1);
	}
	return SBI_OK;
}

/* Stores chain c's position with coordinate j set to v as batch point k. */
static void
put_point(sbi_mcmc *m, size_t k, size_t c, size_t j, double v)
{
	double *p = m->pts + k * m->d;

	memcpy(p, m->x + c * m->d, m->d * sizeof *p);
	p[j] = v;
}

/* ---- initialization ---- */

/* SBI_EINVAL when the starts lie in a proper affine subspace: a Cholesky
 * factorization of their scatter matrix, where pivot k is compared with
 * the scatter of coordinate k itself, so scales do not matter. */
static int
check_span(sbi_mcmc *m, const double *start, sbi_err *err)
{
	size_t d = m->d, n = m->n;
	/* out (2n entries) and lo (n) are free here and n >= 2 d + 2. */
	double *s = m->scratch, *mean = m->out, *diag = m->lo;

	for (size_t j = 0; j < d; j++) {
		mean[j] = 0;
		for (size_t c = 0; c < n; c++)
			mean[j] += start[c * d + j];
		mean[j] /= (double)n;
	}
	for (size_t j = 0; j < d; j++) {
		for (size_t k = 0; k <= j; k++) {
			double sum = 0;
			for (size_t c = 0; c < n; c++)
				sum += (start[c * d + j] - mean[j]) * (start[c * d + k] - mean[k]);
			s[j * d + k] = sum;
		}
		diag[j] = s[j * d + j];
	}
	for (size_t j = 0; j < d; j++) {
		double a = s[j * d + j];
		for (size_t k = 0; k < j; k++)
			a -= s[j * d + k] * s[j * d + k];
		if (diag[j] == 0)
			return sbi_err_set(err, SBI_EINVAL,
			    "mcmc.ensemble: coordinate %zu is the same in every start; the stretch move "
			    "never leaves the affine hull of the starts, so give distinct starts", j + 1);
		if (!(a > DEGENERATE_TOL * diag[j]))
			return sbi_err_set(err, SBI_EINVAL,
			    "mcmc.ensemble: the starts are degenerate (coordinate %zu is an affine "
			    "function of the ones before it); the stretch move never leaves the affine "
			    "hull of the starts, so give starts spanning all %zu dimensions", j + 1, d);
		a = sqrt(a);
		s[j * d + j] = a;
		for (size_t i = j + 1; i < d; i++) {
			double b = s[i * d + j];
			for (size_t k = 0; k < j; k++)
				b -= s[i * d + k] * s[j * d + k];
			s[i * d + j] = b / a;
		}
	}
	return SBI_OK;
}

/* Initial slice widths: the spread of the starts, or 1. */
static void
init_widths(sbi_mcmc *m)
{
	size_t d = m->d, n = m->n;

	for (size_t j = 0; j < d; j++) {
		double mean = 0, ss = 0, w;
		for (size_t c = 0; c < n; c++)
			mean += m->x[c * d + j];
		mean /= (double)n;
		for (size_t c = 0; c < n; c++)
			ss += (m->x[c * d + j] - mean) * (m->x[c * d + j] - mean);
		w = n > 1 ? sqrt(ss / (double)(n - 1)) : 0;
		m->w[j] = w > 0 && isfinite(w) ? w : 1;
	}
}

int
sbi_mcmc_init(sbi_mcmc *m, const double *start, sbi_err *err)
{
	const char *name = sbi_mcmc_kind_name(m->kind);
	size_t d = m->d, n = m->n;
	int rc;

	m->ready = 0;
	if (start == NULL)
		return sbi_err_set(err, SBI_EINVAL, "mcmc.%s: the starting points are missing", name);
	for (size_t c = 0; c < n; c++)
		for (size_t j = 0; j < d; j++)
			if (!isfinite(start[c * d + j]))
				return sbi_err_set(err, SBI_EINVAL,
				    "mcmc.%s: the start of chain %zu has a non-finite coordinate %zu",
				    name, c + 1, j + 1);
	if (m->kind == SBI_MCMC_ENSEMBLE && (rc = check_span(m, start, err)) != SBI_OK)
		return rc;
	memcpy(m->pts, start, n * d * sizeof *start);
	if ((rc = eval(m, n, err)) != SBI_OK)
		return rc;
	for (size_t c = 0; c < n; c++)
		if (!isfinite(m->out[c]))
			return sbi_err_set(err, SBI_EINVAL,
			    "mcmc.%s: the start of chain %zu has log density -inf (outside the support)",
			    name, c + 1);
	memcpy(m->x, start, n * d * sizeof *start);
	memcpy(m->lp, m->out, n * sizeof *m->lp);
	init_widths(m);
	m->updates = m->moved = m->sweeps = 0;
	m->ready = 1;
	return SBI_OK;
}

/* ---- slice sampling ---- */

/* Steps the brackets [lo, hi] of every chain out along coordinate j;
 * *ne counts the expansions. */
static int
step_out(sbi_mcmc *m, size_t j, uint64_t *ne, sbi_err *err)
{
	size_t n = m->n, *budget = m->budget, *who = m->who;
	double w = m->w[j];
	int rc;

	for (;;) {
		size_t k = 0;
		for (size_t c = 0; c < n; c++)
			if (budget[c] > 0) {
				put_point(m, k, c, j, m->lo[c]);
				who[k++] = c;
			}
		for (size_t c = 0; c < n; c++)
			if (budget[n + c] > 0) {
				put_point(m, k, c, j, m->hi[c]);
				who[k++] = n + c;
			}
		if (k == 0)
			return SBI_OK;
		if ((rc = eval(m, k, err)) != SBI_OK)
			return rc;
		for (size_t i = 0; i < k; i++) {
			size_t c = who[i] % n;
			if (!(m->out[i] >= m->logy[c])) {
				budget[who[i]] = 0;
				continue;
			}
			budget[who[i]]--;
			(*ne)++;
			if (who[i] < n)
				m->lo[c] -= w;
			else
				m->hi[c] += w;
		}
	}
}

/* Draws from every chain's bracket until each accepts (or gives up);
 * *nc counts the contractions. */
static int
shrink(sbi_mcmc *m, size_t j, uint64_t *nc, sbi_err *err)
{
	size_t d = m->d, nact = m->n, *act = m->act;
	int rc;

	for (size_t c = 0; c < nact; c++)
		act[c] = c;
	for (int tries = 0; nact > 0 && tries < SLICE_MAX_SHRINK; tries++) {
		for (size_t i = 0; i < nact; i++) {
			size_t c = act[i];
			double v = m->lo[c] + gsl_rng_uniform(m->rng) * (m->hi[c] - m->lo[c]);
			put_point(m, i, c, j, v);
		}
		if ((rc = eval(m, nact, err)) != SBI_OK)
			return rc;
		size_t left = 0;
		for (size_t i = 0; i < nact; i++) {
			size_t c = act[i];
			double v = m->pts[i * d + j];
			if (m->out[i] >= m->logy[c]) {
				m->x[c * d + j] = v;
				m->lp[c] = m->out[i];
				m->moved++;
				continue;
			}
			(*nc)++;
			if (v < m->x[c * d + j])
				m->lo[c] = v;
			else
				m->hi[c] = v;
			act[left++] = c;
		}
		nact = left;
	}
	return SBI_OK;
}

static int
slice_coordinate(sbi_mcmc *m, size_t j, sbi_err *err)
{
	size_t n = m->n;
	double w = m->w[j];
	uint64_t ne = 0, nc = 0;
	int rc;

	for (size_t c = 0; c < n; c++) {
		size_t left = (size_t)(SLICE_MAX_STEPS * gsl_rng_uniform(m->rng));
		m->logy[c] = m->lp[c] + log(gsl_rng_uniform_pos(m->rng));
		m->lo[c] = m->x[c * m->d + j] - w * gsl_rng_uniform(m->rng);
		m->hi[c] = m->lo[c] + w;
		m->budget[c] = left;
		m->budget[n + c] = SLICE_MAX_STEPS - 1 - left;
	}
	if ((rc = step_out(m, j, &ne, err)) != SBI_OK || (rc = shrink(m, j, &nc, err)) != SBI_OK)
		return rc;
	m->updates += n;
	if (m->adapt && ne + nc > 0) {
		double factor = 2.0 * (double)ne / (double)(ne + nc);
		w *= fmin(2.0, fmax(0.5, factor));
		if (isnormal(w))  /* an improper flat density would grow w forever */
			m->w[j] = w;
	}
	return SBI_OK;
}

/* ---- ensemble ---- */

/* Moves walkers [a0, a1) using walkers [b0, b1) as anchors. */
static int
stretch_half(sbi_mcmc *m, size_t a0, size_t a1, size_t b0, size_t b1, sbi_err *err)
{
	size_t d = m->d, k = a1 - a0;
	double *z = m->lo;
	int rc;

	for (size_t i = 0; i < k; i++) {
		const double *xk = m->x + (a0 + i) * d;
		const double *xj = m->x + (b0 + gsl_rng_uniform_int(m->rng, b1 - b0)) * d;
		double u = gsl_rng_uniform(m->rng);
		/* Inverse CDF of g(z) ~ 1/sqrt(z) on [1/a, a]. */
		z[i] = ((STRETCH_A - 1) * u + 1) * ((STRETCH_A - 1) * u + 1) / STRETCH_A;
		for (size_t l = 0; l < d; l++)
			m->pts[i * d + l] = xj[l] + z[i] * (xk[l] - xj[l]);
	}
	if ((rc = eval(m, k, err)) != SBI_OK)
		return rc;
	for (size_t i = 0; i < k; i++) {
		size_t c = a0 + i;
		double logr = (double)(d - 1) * log(z[i]) + (m->out[i] - m->lp[c]);
		if (log(gsl_rng_uniform_pos(m->rng)) < logr) {
			memcpy(m->x + c * d, m->pts + i * d, d * sizeof(double));
			m->lp[c] = m->out[i];
			m->moved++;
		}
	}
	m->updates += k;
	return SBI_OK;
}

/* ---- driving ---- */

int
sbi_mcmc_iterate(sbi_mcmc *m, sbi_err *err)
{
	size_t half = m->n / 2;
	int rc = SBI_OK;

	if (!m->ready)
		return sbi_err_set(err, SBI_EINVAL, "mcmc.%s: call sbi_mcmc_init before iterating",
		    sbi_mcmc_kind_name(m->kind));
	if (m->kind == SBI_MCMC_SLICE) {
		for (size_t j = 0; j < m->d && rc == SBI_OK; j++)
			rc = slice_coordinate(m, j, err);
	} else {
		rc = stretch_half(m, 0, half, half, m->n, err);
		if (rc == SBI_OK)
			rc = stretch_half(m, half, m->n, 0, half, err);
	}
	if (rc == SBI_OK)
		m->sweeps++;
	return rc;
}

const double *
sbi_mcmc_state(const sbi_mcmc *m)
{
	return m->x;
}

const double *
sbi_mcmc_logdens(const sbi_mcmc *m)
{
	return m->lp;
}

uint64_t
sbi_mcmc_evaluations(const sbi_mcmc *m)
{
	return m->nevals;
}

uint64_t
sbi_mcmc_calls(const sbi_mcmc *m)
{
	return m->ncalls;
}

const double *
sbi_mcmc_width(const sbi_mcmc *m)
{
	return m->kind == SBI_MCMC_SLICE ? m->w : NULL;
}

double
sbi_mcmc_acceptance(const sbi_mcmc *m)
{
	return m->updates ? (double)m->moved / (double)m->updates : NAN;
}

int
sbi_mcmc_run(sbi_mcmc *m, size_t warmup, size_t thin, size_t nsamples, double *samples,
    sbi_err *err)
{
	const char *name = sbi_mcmc_kind_name(m->kind);
	size_t n = m->n, d = m->d, row = 0;
	int rc = SBI_OK;

	if (!m->ready)
		return sbi_err_set(err, SBI_EINVAL, "mcmc.%s: call sbi_mcmc_init before running", name);
	if (thin == 0)
		return sbi_err_set(err, SBI_EINVAL, "mcmc.%s: thin must be at least 1", name);
	if (nsamples > 0 && samples == NULL)
		return sbi_err_set(err, SBI_EINVAL, "mcmc.%s: the sample buffer is missing", name);
	m->adapt = 1;
	for (size_t i = 0; i < warmup && rc == SBI_OK; i++)
		rc = sbi_mcmc_iterate(m, err);
	m->adapt = 0;
	for (size_t sweep = 1; row < nsamples && rc == SBI_OK; sweep++) {
		if ((rc = sbi_mcmc_iterate(m, err)) != SBI_OK || sweep % thin != 0)
			continue;
		size_t k = nsamples - row < n ? nsamples - row : n;
		memcpy(samples + row * d, m->x, k * d * sizeof *samples);
		row += k;
	}
	return rc;
}

size_t
sbi_mcmc_draws_by_chain(const double *samples, size_t nsamples, size_t nchains, size_t d,
    double *draws)
{
	size_t niter = nsamples / nchains;

	for (size_t c = 0; c < nchains; c++)
		for (size_t t = 0; t < niter; t++)
			memcpy(draws + (c * niter + t) * d, samples + (t * nchains + c) * d,
			    d * sizeof *draws);
	return niter;
}

/* ---- starting points ---- */

typedef struct { double key; size_t i; } keyed;

/* Descending keys, ties by index, so the order is total. */
static int
cmp_keyed(const void *pa, const void *pb)
{
	const keyed *a = pa, *b = pb;

	if (a->key != b->key)
		return a->key < b->key ? 1 : -1;
	return (a->i > b->i) - (a->i < b->i);
}

int
sbi_mcmc_pick_starts(const double *cand, const double *logdens, size_t m, size_t d,
    size_t nchains, uint64_t seed, uint64_t round, double *start, sbi_err *err)
{
	size_t nfinite = 0, filled = 0;
	keyed *k;
	gsl_rng *r;

	for (size_t i = 0; i < m; i++) {
		if (logdens[i] == INFINITY)
			return sbi_err_set(err, SBI_EINVAL,
			    "mcmc.pick_starts: candidate %zu has log density +inf", i + 1);
		nfinite += isfinite(logdens[i]) != 0;
	}
	if (nfinite == 0)
		return sbi_err_set(err, SBI_EINVAL,
		    "mcmc.pick_starts: none of the %zu candidates has a finite log density", m);
	if (nchains == 0)
		return SBI_OK;
	if ((k = sbi_malloc(nfinite * sizeof *k)) == NULL ||
	    (r = sbi_rng_alloc()) == NULL) {
		sbi_free(k);
		return sbi_err_set(err, SBI_ENOMEM, "mcmc.pick_starts: out of memory for %zu candidates",
		    m);
	}
	sbi_rng_set_stream(r, seed, sbi_rng_round_purpose(SBI_STREAM_METHOD, round), STREAM_STARTS);
	/* Gumbel top-k: the candidates with the nchains largest
	 * logdens + Gumbel noise are a sample without replacement with
	 * successive probabilities proportional to the weights (Efraimidis and
	 * Spirakis 2006), computed in logs, so nothing underflows. */
	while (filled < nchains) {
		size_t nk = 0, take;
		for (size_t i = 0; i < m; i++)
			if (isfinite(logdens[i]))
				k[nk++] = (keyed){ logdens[i] - log(-log(gsl_rng_uniform_pos(r))), i };
		qsort(k, nk, sizeof *k, cmp_keyed);
		take = nchains - filled < nk ? nchains - filled : nk;
		for (size_t i = 0; i < take; i++, filled++)
			memcpy(start + filled * d, cand + k[i].i * d, d * sizeof *start);
	}
	gsl_rng_free(r);
	sbi_free(k);
	return SBI_OK;
}

/* ---- diagnostics ---- */

/* The split chains of dimension j: chain h / 2, first (h even) or second
 * half of half draws each. mu caches the split chains' means when there are
 * at most MU_CACHE of them; otherwise they are recomputed where needed. */
#define MU_CACHE 256

typedef struct {
	const double *draws;
	size_t niter, d, j, half, nh;
	double *mu;
} splits;

static double
at(const splits *s, size_t h, size_t i)
{
	size_t t0 = h % 2 ? s->niter - s->half : 0;

	return s->draws[((h / 2) * s->niter + t0 + i) * s->d + s->j];
}

static double
split_mean(const splits *s, size_t h)
{
	double sum;

	if (s->mu != NULL)
		return s->mu[h];
	sum = 0;
	for (size_t i = 0; i < s->half; i++)
		sum += at(s, h, i);
	return sum / (double)s->half;
}

/* The autocovariance of split chain h at lag t, divided by the chain
 * length as in Stan. */
static double
split_acov(const splits *s, size_t h, size_t t)
{
	double mu = split_mean(s, h), sum = 0;

	for (size_t i = 0; i + t < s->half; i++)
		sum += (at(s, h, i) - mu) * (at(s, h, i + t) - mu);
	return sum / (double)s->half;
}

/* Points s at dimension j and computes W, the mean within-chain variance,
 * and var+ = (N - 1) / N W + B / N (BDA3, section 11.4). 0 when they are
 * usable, -1 when there are too few draws or W is not positive. */
static int
split_vars(splits *s, size_t j, double cache[MU_CACHE], double *w, double *varplus)
{
	double n = (double)s->half, mean = 0, b = 0, sw = 0;

	if (s->nh == 0 || s->half < 2)
		return -1;
	s->j = j;
	s->mu = NULL;
	if (s->nh <= MU_CACHE) {
		for (size_t h = 0; h < s->nh; h++)
			cache[h] = split_mean(s, h);
		s->mu = cache;
	}
	for (size_t h = 0; h < s->nh; h++) {
		mean += split_mean(s, h);
		sw += split_acov(s, h, 0) * n / (n - 1);
	}
	mean /= (double)s->nh;
	for (size_t h = 0; h < s->nh; h++)
		b += (split_mean(s, h) - mean) * (split_mean(s, h) - mean);
	*w = sw / (double)s->nh;
	*varplus = (n - 1) / n * *w + b / (double)(s->nh - 1);
	return *w > 0 && isfinite(*w) && isfinite(*varplus) ? 0 : -1;
}

void
sbi_mcmc_rhat(const double *draws, size_t nchains, size_t niter, size_t d, double *rhat)
{
	double cache[MU_CACHE], w, varplus;
	splits s = { draws, niter, d, 0, niter / 2, 2 * nchains, NULL };

	for (size_t j = 0; j < d; j++)
		rhat[j] = split_vars(&s, j, cache, &w, &varplus) == 0 ? sqrt(varplus / w) : NAN;
}

void
sbi_mcmc_ess(const double *draws, size_t nchains, size_t niter, size_t d, double *ess)
{
	double cache[MU_CACHE], w, varplus;
	splits s = { draws, niter, d, 0, niter / 2, 2 * nchains, NULL };
	double total = (double)s.nh * (double)s.half;

	for (size_t j = 0; j < d; j++) {
		ess[j] = NAN;
		if (split_vars(&s, j, cache, &w, &varplus) != 0)
			continue;
		/* rho_t = 1 - (W - mean_h acov_h(t)) / var+ (Vehtari et al. 2021,
		 * eq. 10), summed in pairs P = rho_t + rho_t+1 with Geyer's
		 * truncation at the first negative pair and monotone pairs. */
		double sum = 0, prev = INFINITY;
		for (size_t t = 0; t + 1 < s.half; t += 2) {
			double p = 0;
			for (size_t l = t; l < t + 2; l++) {
				double acov = 0;
				for (size_t h = 0; h < s.nh; h++)
					acov += split_acov(&s, h, l);
				p += 1 - (w - acov / (double)s.nh) / varplus;
			}
			if (t > 0 && p < 0)
				break;
			prev = fmin(p, prev);
			sum += prev;
		}
		/* tau = -1 + 2 sum; Stan caps the ESS at N log10(N). */
		ess[j] = total / fmax(-1 + 2 * sum, 1 / log10(total));
	}
}

/* ---- modes ---- */

/* Chains a and b of the means and variances (nchains x d each) are linked
 * when every dimension's means lie within SBI_MCMC_MODE_GAP pooled
 * standard deviations. */
static int
chains_linked(const double *mean, const double *var, size_t d, size_t a, size_t b)
{
	for (size_t j = 0; j < d; j++) {
		double s = sqrt((var[a * d + j] + var[b * d + j]) / 2);
		if (!(fabs(mean[a * d + j] - mean[b * d + j]) <= SBI_MCMC_MODE_GAP * s))
			return 0;
	}
	return 1;
}

/* Each chain's mean and variance per dimension. */
static void
chain_moments(const double *draws, size_t nchains, size_t niter, size_t d, double *mean, double *var)
{
	for (size_t c = 0; c < nchains; c++)
		for (size_t j = 0; j < d; j++) {
			const double *x = draws + c * niter * d + j;
			double m = 0, v = 0;
			for (size_t t = 0; t < niter; t++)
				m += x[t * d];
			m /= (double)niter;
			for (size_t t = 0; t < niter; t++)
				v += (x[t * d] - m) * (x[t * d] - m);
			mean[c * d + j] = m;
			var[c * d + j] = niter > 1 ? v / (double)(niter - 1) : 0;
		}
}

/* Labels the connected sets of linked chains; returns their number. queue
 * has nchains entries. */
static size_t
label_modes(const double *mean, const double *var, size_t nchains, size_t d, size_t *mode, size_t *queue)
{
	size_t nmodes = 0;

	for (size_t c = 0; c < nchains; c++)
		mode[c] = SIZE_MAX;
	for (size_t c = 0; c < nchains; c++) {
		if (mode[c] != SIZE_MAX)
			continue;
		size_t head = 0, tail = 0;
		mode[c] = nmodes;
		queue[tail++] = c;
		while (head < tail) {
			size_t a = queue[head++];
			for (size_t b = 0; b < nchains; b++)
				if (mode[b] == SIZE_MAX && chains_linked(mean, var, d, a, b)) {
					mode[b] = nmodes;
					queue[tail++] = b;
				}
		}
		nmodes++;
	}
	return nmodes;
}

/* The largest split R-hat over the d dimensions of draws (rhat: d
 * scratch entries); NaN when one is undefined. */
static double
largest_rhat(const double *draws, size_t nchains, size_t niter, size_t d, double *rhat)
{
	double worst = 0;

	sbi_mcmc_rhat(draws, nchains, niter, d, rhat);
	for (size_t j = 0; j < d; j++)
		worst = isnan(rhat[j]) || isnan(worst) ? NAN : fmax(worst, rhat[j]);
	return worst;
}

/* The largest split R-hat over the modes, each mode's chains gathered
 * into sub alone. */
static double
within_rhat(const double *draws, size_t nchains, size_t niter, size_t d, const size_t *mode,
    size_t nmodes, double *sub, double *rhat)
{
	double worst = 0;

	for (size_t k = 0; k < nmodes; k++) {
		size_t n = 0;
		for (size_t c = 0; c < nchains; c++)
			if (mode[c] == k)
				memcpy(sub + n++ * niter * d, draws + c * niter * d, niter * d * sizeof *sub);
		double r = largest_rhat(sub, n, niter, d, rhat);
		worst = isnan(r) || isnan(worst) ? NAN : fmax(worst, r);
	}
	return worst;
}

size_t
sbi_mcmc_modes(const double *draws, size_t nchains, size_t niter, size_t d, size_t *mode,
    double *rhat_within)
{
	/* Owned here: the moments, a queue, one mode's R-hats and, with two
	 * or more modes, one mode's draws gathered. */
	double *mean = sbi_malloc(2 * nchains * d * sizeof *mean), *rhat = sbi_malloc(d * sizeof *rhat), *sub = NULL;
	size_t *queue = sbi_malloc(nchains * sizeof *queue), nmodes = 0;

	*rhat_within = NAN;
	if (mean == NULL || rhat == NULL || queue == NULL)
		goto out;
	if (niter < 4) { /* too few draws to tell chains apart: one mode */
		for (size_t c = 0; c < nchains; c++)
			mode[c] = 0;
		nmodes = 1;
		goto out;
	}
	chain_moments(draws, nchains, niter, d, mean, mean + nchains * d);
	nmodes = label_modes(mean, mean + nchains * d, nchains, d, mode, queue);
	if (nmodes == 1) /* the pooled R-hat, without a copy */
		*rhat_within = largest_rhat(draws, nchains, niter, d, rhat);
	else if ((sub = sbi_malloc(nchains * niter * d * sizeof *sub)) != NULL)
		*rhat_within = within_rhat(draws, nchains, niter, d, mode, nmodes, sub, rhat);
	else
		nmodes = 0;
out:
	sbi_free(queue);
	sbi_free(sub);
	sbi_free(rhat);
	sbi_free(mean);
	return nmodes;
}
