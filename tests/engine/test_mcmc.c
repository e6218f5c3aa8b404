/* Tests of the MCMC samplers and diagnostics (engine/infer/mcmc.c): moments of
 * known targets within Monte Carlo error, mode weights, supports, R-hat and
 * ESS against known answers, start picking, error paths, determinism,
 * batching and out-of-memory behaviour.
 *
 * Tolerances are 5 Monte Carlo standard errors, MCSE = sd(f) / sqrt(ESS(f))
 * for each tested expectation E f, with the ESS of f's own draws from
 * sbi_mcmc_ess (itself tested against known answers below). An ESS floor
 * keeps a sampler that barely moves, and therefore has huge MCSEs, from
 * passing. Seeds are fixed, so each check is a fixed outcome; a correct
 * sampler misses 5 MCSEs with probability about 1e-6 per check (the tests
 * also pass with 8 other seed sets), while broken samplers fail: a wrong
 * slice level, accepting without the slice test, one-sided stepping out,
 * shrinking the wrong end, a wrong power of z or distribution of z in the
 * stretch move (each tried).
 *
 * Measured costs after warm-up (printed as "mcmc:" lines; 2-D Gaussian,
 * rho = 0.8, scales 0.5 and 4, 20000 samples): slice sampling with 8
 * chains spends 9.6 evaluations per kept sample (one sweep of 2
 * coordinates, ~4.8 each) and ~40 per effective sample, in callbacks of
 * ~6 points; one sweep of 20 chains takes 12 callbacks for 183 points.
 * The ensemble (16 walkers) spends exactly 1 evaluation per kept sample
 * and ~32 per effective sample. With fixed widths (measured separately,
 * 80000 samples) the slice cost per effective sample is flat (44-48) for
 * widths of 2-10 conditional standard deviations and rises to 94 at 0.5;
 * adaptation lands at 2-4. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include <gsl/gsl_cdf.h>
#include <gsl/gsl_randist.h>

#include "check.h"
#include "sbi/alloc.h"
#include "sbi/mcmc.h"
#include "sbi/rng.h"

#define NSAMP 20000
#define LOG_2PI 1.83787706640934548356065947281123527

/* ---- target densities ---- */

enum target { GAUSS, MIXTURE, BOX };

/* A target with call counters and fault injection. */
typedef struct dens {
	enum target target;
	uint64_t calls, evals;
	size_t max_batch;
	uint64_t fail_at;   /* return SBI_ESIM on this call (1-based); 0: never */
	size_t minus_inf;   /* with GAUSS, this point index + 1 gets -inf at call 1 */
	int nan_outside;    /* with BOX, NaN instead of -inf outside */
	uint64_t plus_inf_at; /* the first point of this call (1-based) gets +inf */
} dens;

/* The correlated Gaussian: mean (1, -2), sd (0.5, 4), correlation 0.8. */
static const double g_mean[2] = { 1, -2 }, g_sd[2] = { 0.5, 4 }, g_rho = 0.8;

/* The mixture 0.3 N(-3, 1) + 0.7 N(3, 1). */
static const double mix_w = 0.3, mix_mu = 3;

/* The box [0, 1] x [-1, 2] times N((0.9, 1.8), 0.5^2 I). */
static const double box_lo[2] = { 0, -1 }, box_hi[2] = { 1, 2 }, box_c[2] = { 0.9, 1.8 },
    box_sd = 0.5;

static double
log_gauss(const double *x)
{
	double z1 = (x[0] - g_mean[0]) / g_sd[0], z2 = (x[1] - g_mean[1]) / g_sd[1];
	return -0.5 * (z1 * z1 - 2 * g_rho * z1 * z2 + z2 * z2) / (1 - g_rho * g_rho);
}

static double
log_mixture(double x)
{
	double a = log(mix_w) - 0.5 * (x + mix_mu) * (x + mix_mu);
	double b = log(1 - mix_w) - 0.5 * (x - mix_mu) * (x - mix_mu);
	return fmax(a, b) + log1p(exp(-fabs(a - b))) - 0.5 * LOG_2PI;
}

static double
log_box(const double *x)
{
	double q = 0;
	for (int j = 0; j < 2; j++) {
		if (x[j] < box_lo[j] || x[j] > box_hi[j])
			return -INFINITY;
		q += (x[j] - box_c[j]) * (x[j] - box_c[j]);
	}
	return -0.5 * q / (box_sd * box_sd);
}

static int
logdens(void *ud, const double *theta, size_t n, size_t d, double *out)
{
	dens *t = ud;

	t->calls++;
	t->evals += n;
	if (n > t->max_batch)
		t->max_batch = n;
	if (t->fail_at == t->calls)
		return SBI_ESIM;
	for (size_t i = 0; i < n; i++) {
		const double *x = theta + i * d;
		out[i] = t->target == GAUSS ? log_gauss(x) :
		    t->target == MIXTURE ? log_mixture(x[0]) : log_box(x);
		if (t->calls == 1 && t->minus_inf == i + 1)
			out[i] = -INFINITY;
		if (t->nan_outside && out[i] == -INFINITY)
			out[i] = NAN;
	}
	if (t->plus_inf_at == t->calls)
		out[0] = INFINITY;
	return SBI_OK;
}

/* ---- helpers ---- */

/* nchains starting points near c, spread over +-spread per coordinate
 * (a fixed pattern, so no RNG is involved). */
static void
starts_near(double *start, size_t nchains, size_t d, const double *c, double spread)
{
	for (size_t k = 0; k < nchains; k++)
		for (size_t j = 0; j < d; j++)
			start[k * d + j] = c[j] + spread *
			    (2 * fmod(0.6180339887 * (double)(k * d + j + 1), 1.0) - 1);
}

/* Runs a sampler and returns nsamples samples (caller frees); *evals gets
 * the evaluations after warm-up. */
static double *
sample(sbi_mcmc_kind kind, dens *t, size_t d, size_t nchains, const double *start,
    uint64_t seed, size_t warmup, size_t thin, size_t nsamples, uint64_t *evals)
{
	sbi_err err;
	double *s = malloc(nsamples * d * sizeof *s);
	sbi_mcmc *m = sbi_mcmc_alloc(kind, d, nchains, logdens, t, seed, 0, &err);

	CHECK(m != NULL);
	if (m == NULL)
		return s;
	CHECK(sbi_mcmc_init(m, start, &err) == SBI_OK);
	CHECK(sbi_mcmc_run(m, warmup, thin, 0, NULL, &err) == SBI_OK);
	uint64_t e0 = sbi_mcmc_evaluations(m);
	CHECK(sbi_mcmc_run(m, 0, thin, nsamples, s, &err) == SBI_OK);
	if (evals)
		*evals = sbi_mcmc_evaluations(m) - e0;
	sbi_mcmc_free(m);
	return s;
}

/* E f within 5 MCSEs of truth, for nf functionals given as their draws
 * fx (nsamples x nf, chain-interleaved as sbi_mcmc_run writes them), with
 * ESS(f) >= min_ess. The ESS of the first functional goes to *ess0. */
static void
check_expectations(const char *what, const double *fx, size_t nsamples, size_t nchains,
    size_t nf, const double *truth, double min_ess, double *ess0)
{
	double *draws = malloc(nsamples * nf * sizeof *draws), ess[8];
	size_t niter = sbi_mcmc_draws_by_chain(fx, nsamples, nchains, nf, draws);
	size_t n = niter * nchains;

	sbi_mcmc_ess(draws, nchains, niter, nf, ess);
	for (size_t k = 0; k < nf; k++) {
		double mean = 0, ss = 0;
		for (size_t i = 0; i < n; i++)
			mean += draws[i * nf + k];
		mean /= (double)n;
		for (size_t i = 0; i < n; i++)
			ss += (draws[i * nf + k] - mean) * (draws[i * nf + k] - mean);
		double mcse = sqrt(ss / (double)(n - 1) / ess[k]);
		printf("mcmc: %s: E f%zu = %.4f (truth %.4f), ESS %.0f, MCSE %.4f\n", what, k,
		    mean, truth[k], ess[k], mcse);
		CHECK(ess[k] >= min_ess);
		CHECK_NEAR(mean, truth[k], 5 * mcse);
	}
	if (ess0)
		*ess0 = ess[0];
	free(draws);
}

/* Checks mean and covariance of Gaussian samples: f = x1, x2, (x1 - m1)^2,
 * (x2 - m2)^2, (x1 - m1)(x2 - m2) with the true means, so each E f is
 * known exactly. */
static double
check_gauss_moments(const char *what, const double *s, size_t nsamples, size_t nchains,
    double min_ess)
{
	double *fx = malloc(nsamples * 5 * sizeof *fx), ess;
	double truth[5] = { g_mean[0], g_mean[1], g_sd[0] * g_sd[0], g_sd[1] * g_sd[1],
		g_rho * g_sd[0] * g_sd[1] };

	for (size_t i = 0; i < nsamples; i++) {
		double a = s[2 * i] - g_mean[0], b = s[2 * i + 1] - g_mean[1];
		double *f = fx + 5 * i;
		f[0] = s[2 * i], f[1] = s[2 * i + 1], f[2] = a * a, f[3] = b * b, f[4] = a * b;
	}
	check_expectations(what, fx, nsamples, nchains, 5, truth, min_ess, &ess);
	free(fx);
	return ess;
}

/* ---- samplers on known targets ---- */

/* ESS floors: slice sampling on this target keeps roughly 1 effective
 * draw per 3 samples (ESS ~ 6000 of 20000); the ensemble with 16 walkers
 * about 1 per 20 (ESS ~ 1000, autocorrelation time ~ 15 sweeps). The
 * floors are a third of that, so only a sampler mixing much worse, whose
 * MCSEs would be too wide to mean anything, fails them. */
/* The correlated Gaussian from nchains starts near its mean: its moments
 * with an ESS floor of min_ess, and the cost per sample printed. */
static void
check_gauss(sbi_mcmc_kind kind, size_t nchains, uint64_t seed, size_t warmup, double min_ess)
{
	dens t = { .target = GAUSS };
	double start[16 * 2];
	uint64_t evals;
	char what[32];

	snprintf(what, sizeof what, "%s gaussian", sbi_mcmc_kind_name(kind));
	starts_near(start, nchains, 2, g_mean, 1.0);
	double *s = sample(kind, &t, 2, nchains, start, seed, warmup, 1, NSAMP, &evals);
	double ess = check_gauss_moments(what, s, NSAMP, nchains, min_ess);
	printf("mcmc: %s: after warm-up %.2f evaluations per sample, %.1f per "
	    "effective sample (of x1)", what, (double)evals / NSAMP, (double)evals / ess);
	if (kind == SBI_MCMC_SLICE) /* it evaluates several points per callback */
		printf("; %.2f points per callback", (double)t.evals / (double)t.calls);
	printf("\n");
	free(s);
}

TEST(slice_correlated_gaussian)
{
	check_gauss(SBI_MCMC_SLICE, 8, 11, 200, 2000);
}

TEST(ensemble_correlated_gaussian)
{
	check_gauss(SBI_MCMC_ENSEMBLE, 16, 12, 500, 300);
}

/* Modes 6 standard deviations apart with weights 0.3 and 0.7; half the
 * chains start in each, so the weights are only right if chains cross
 * (slice brackets drawn at low levels step across the valley, whose density
 * is 1.6% of the peak). f = 1{x < 0}, E f = 0.3 up to Phi(-3) terms. The
 * stretch move cannot cross in 1-D (a proposal lies beyond the midpoint of
 * the walker and its anchor), so its mode weights are those of its starts;
 * it is not tested here. */
TEST(slice_bimodal_weights)
{
	enum { NC = 20 };
	dens t = { .target = MIXTURE };
	double start[NC], fx[NSAMP], left = 0;
	double truth = mix_w * gsl_cdf_ugaussian_P(mix_mu) +
	    (1 - mix_w) * gsl_cdf_ugaussian_P(-mix_mu);

	for (int c = 0; c < NC; c++)
		start[c] = (c % 2 ? 1 : -1) * mix_mu + 0.01 * c;
	double *s = sample(SBI_MCMC_SLICE, &t, 1, NC, start, 13, 200, 1, NSAMP, NULL);
	for (int i = 0; i < NSAMP; i++) {
		fx[i] = s[i] < 0;
		left += fx[i];
		CHECK(fabs(s[i]) < 3 * mix_mu);
	}
	check_expectations("slice bimodal weight of x < 0", fx, NSAMP, NC, 1, &truth, 200, NULL);
	CHECK(left > 0.2 * NSAMP && left < 0.4 * NSAMP);
	free(s);
}

/* The mean of N(c, sd^2) truncated to [lo, hi]. */
static double
truncated_mean(double c, double sd, double lo, double hi)
{
	double a = (lo - c) / sd, b = (hi - c) / sd;
	return c + sd * (gsl_ran_ugaussian_pdf(a) - gsl_ran_ugaussian_pdf(b)) /
	    (gsl_cdf_ugaussian_P(b) - gsl_cdf_ugaussian_P(a));
}

/* Most of the mass presses against the corner (1, 2): no sample may leave
 * the box, and the truncated means must be right (a sampler clamping to the
 * boundary would pile mass on it and miss them). ESS floors as above: slice
 * sampling reaches ~12000, the ensemble ~200-400 (proposals leaving the box
 * are rejected, so it moves slowly along the walls). */
static void
check_box(sbi_mcmc_kind kind, size_t nchains, uint64_t seed, double min_ess)
{
	dens t = { .target = BOX };
	double start[32 * 2], truth[2], c[2] = { 0.5, 0.5 };
	size_t outside = 0;

	starts_near(start, nchains, 2, c, 0.45);
	double *s = sample(kind, &t, 2, nchains, start, seed, 300, 1, NSAMP, NULL);
	for (size_t i = 0; i < NSAMP; i++)
		for (size_t j = 0; j < 2; j++)
			outside += s[2 * i + j] < box_lo[j] || s[2 * i + j] > box_hi[j];
	CHECK(outside == 0);
	for (int j = 0; j < 2; j++)
		truth[j] = truncated_mean(box_c[j], box_sd, box_lo[j], box_hi[j]);
	check_expectations(sbi_mcmc_kind_name(kind), s, NSAMP, nchains, 2, truth, min_ess, NULL);
	free(s);
}

TEST(slice_bounded_support)
{
	check_box(SBI_MCMC_SLICE, 8, 14, 4000);
}

TEST(ensemble_bounded_support)
{
	check_box(SBI_MCMC_ENSEMBLE, 16, 15, 100);
}

/* Widths adapt from starts spread 1e-6 and 1e2 (so initial widths ~1e-5
 * and ~100 times the conditional sds, 0.3 for x1 and 2.4 for x2) to within
 * a small factor of them in 100 warm-up sweeps; without adaptation they
 * stay put. */
TEST(slice_width_adaptation)
{
	dens t = { .target = GAUSS };
	double start[4 * 2], ws[2][2];
	sbi_err err;

	for (int k = 0; k < 2; k++) {
		double spread = k == 0 ? 1e-6 : 1e2;
		for (int c = 0; c < 4; c++) {
			start[2 * c] = g_mean[0] + spread * (c - 1.5);
			start[2 * c + 1] = g_mean[1] + spread * (1.5 - c) * (c % 2 ? 1 : 0.5);
		}
		sbi_mcmc *m = sbi_mcmc_alloc(SBI_MCMC_SLICE, 2, 4, logdens, &t, 16, 0, &err);
		CHECK(sbi_mcmc_init(m, start, &err) == SBI_OK);
		double w0 = sbi_mcmc_width(m)[1];
		printf("mcmc: initial widths %.3g %.3g\n", sbi_mcmc_width(m)[0], w0);
		CHECK(sbi_mcmc_iterate(m, &err) == SBI_OK);
		CHECK(sbi_mcmc_width(m)[1] == w0);
		CHECK(sbi_mcmc_run(m, 100, 1, 0, NULL, &err) == SBI_OK);
		ws[k][0] = sbi_mcmc_width(m)[0];
		ws[k][1] = sbi_mcmc_width(m)[1];
		printf("mcmc: widths after warm-up: %.3g %.3g\n", ws[k][0], ws[k][1]);
		CHECK(sbi_mcmc_acceptance(m) == 1);
		sbi_mcmc_free(m);
	}
	for (int k = 0; k < 2; k++) {
		CHECK(ws[k][0] > 0.1 && ws[k][0] < 3);
		CHECK(ws[k][1] > 0.8 && ws[k][1] < 24);
	}
}

/* ---- diagnostics ---- */

/* nchains x niter draws of AR(1) x_t = phi x_t-1 + e_t with stationary
 * variance 1 (phi = 0: iid N(0, 1)), chain c shifted by c * shift. */
static double *
ar1(size_t nchains, size_t niter, double phi, double shift, uint64_t seed)
{
	double *x = malloc(nchains * niter * sizeof *x);
	gsl_rng *r = sbi_rng_alloc();

	for (size_t c = 0; c < nchains; c++) {
		sbi_rng_set_stream(r, seed, SBI_STREAM_SIM, c);
		double v = gsl_ran_ugaussian(r);
		for (size_t t = 0; t < niter; t++) {
			x[c * niter + t] = v + (double)c * shift;
			v = phi * v + sqrt(1 - phi * phi) * gsl_ran_ugaussian(r);
		}
	}
	gsl_rng_free(r);
	return x;
}

TEST(rhat_iid_and_stuck)
{
	double rhat;
	double *x = ar1(4, 5000, 0, 0, 21);
	sbi_mcmc_rhat(x, 4, 5000, 1, &rhat);
	printf("mcmc: rhat of iid draws %.5f\n", rhat);
	CHECK(rhat > 0.99 && rhat < 1.01);
	free(x);

	/* Means 0, 0.5, 1, 1.5 with unit sd: R-hat ~ sqrt(1 + 0.42) = 1.19. */
	x = ar1(4, 5000, 0, 0.5, 22);
	sbi_mcmc_rhat(x, 4, 5000, 1, &rhat);
	printf("mcmc: rhat of chains at different means %.5f\n", rhat);
	CHECK(rhat > 1.1);
	free(x);

	/* One chain drifting (a trend): the split halves disagree. */
	x = ar1(1, 4000, 0, 0, 23);
	for (size_t t = 0; t < 4000; t++)
		x[t] += 2.0 * (double)t / 4000;
	sbi_mcmc_rhat(x, 1, 4000, 1, &rhat);
	printf("mcmc: rhat of one drifting chain %.5f\n", rhat);
	CHECK(rhat > 1.1);
	free(x);
}

TEST(ess_iid_and_ar1)
{
	double ess[2];
	double *x = ar1(4, 10000, 0, 0, 31);
	sbi_mcmc_ess(x, 4, 10000, 1, ess);
	printf("mcmc: ess of 40000 iid draws %.0f\n", ess[0]);
	CHECK_NEAR(ess[0], 40000, 4000);
	free(x);

	/* tau = (1 + phi) / (1 - phi) = 19 for phi = 0.9. */
	x = ar1(4, 25000, 0.9, 0, 32);
	sbi_mcmc_ess(x, 4, 25000, 1, ess);
	printf("mcmc: ess of 100000 AR(1) draws, phi 0.9: %.0f (expected %.0f)\n", ess[0],
	    1e5 * 0.1 / 1.9);
	CHECK_NEAR(ess[0], 1e5 * 0.1 / 1.9, 0.2 * 1e5 * 0.1 / 1.9);
	free(x);
}

/* Two dimensions interleaved: each gets the same answer as alone; odd
 * niter drops the middle draw. */
TEST(diagnostics_layout)
{
	enum { NC = 3, NI = 2001 };
	double *a = ar1(NC, NI, 0.5, 0, 41), *b = ar1(NC, NI, 0, 0.3, 42);
	double *ab = malloc(NC * NI * 2 * sizeof *ab), r1[2], e1[2], r2[2], e2[2];

	for (size_t i = 0; i < NC * NI; i++)
		ab[2 * i] = a[i], ab[2 * i + 1] = b[i];
	sbi_mcmc_rhat(ab, NC, NI, 2, r2);
	sbi_mcmc_ess(ab, NC, NI, 2, e2);
	sbi_mcmc_rhat(a, NC, NI, 1, &r1[0]);
	sbi_mcmc_ess(a, NC, NI, 1, &e1[0]);
	sbi_mcmc_rhat(b, NC, NI, 1, &r1[1]);
	sbi_mcmc_ess(b, NC, NI, 1, &e1[1]);
	for (int j = 0; j < 2; j++)
		CHECK(r1[j] == r2[j] && e1[j] == e2[j]);
	/* The middle draw of each chain is ignored. */
	for (size_t c = 0; c < NC; c++)
		a[c * NI + NI / 2] = 1e6;
	sbi_mcmc_rhat(a, NC, NI, 1, &r2[0]);
	CHECK(r2[0] == r1[0]);
	/* Too few draws and constant draws give NaN. */
	sbi_mcmc_rhat(a, NC, 3, 1, &r2[0]);
	sbi_mcmc_ess(a, NC, 3, 1, &e2[0]);
	CHECK(isnan(r2[0]) && isnan(e2[0]));
	for (size_t i = 0; i < NC * NI; i++)
		a[i] = 2.5;
	sbi_mcmc_rhat(a, NC, NI, 1, &r2[0]);
	sbi_mcmc_ess(a, NC, NI, 1, &e2[0]);
	CHECK(isnan(r2[0]) && isnan(e2[0]));
	free(a);
	free(b);
	free(ab);
}

/* Chains in separate modes: 3 chains near 0 and 2 near 8 (unit sd) form
 * two modes whose own R-hat is near 1 while the pooled R-hat is huge;
 * chains 0.5 sd apart form one mode, with the pooled R-hat; a drifting
 * chain in a mode of its own is not mixed. */
TEST(modes_of_chains)
{
	enum { NI = 4000 };
	size_t mode[5];
	double within, rhat;
	double *x = ar1(5, NI, 0.5, 0, 51);

	for (size_t t = 0; t < NI; t++) /* chains 1 and 3 in the far mode */
		x[1 * NI + t] += 8, x[3 * NI + t] += 8;
	sbi_mcmc_rhat(x, 5, NI, 1, &rhat);
	size_t n = sbi_mcmc_modes(x, 5, NI, 1, mode, &within);
	printf("mcmc: modes %zu (%zu %zu %zu %zu %zu), pooled R-hat %.3f, within %.4f\n", n, mode[0], mode[1],
	    mode[2], mode[3], mode[4], rhat, within);
	CHECK(n == 2 && mode[0] == 0 && mode[1] == 1 && mode[2] == 0 && mode[3] == 1 && mode[4] == 0);
	CHECK(rhat > 3 && within > 0.99 && within < 1.02);
	free(x);

	x = ar1(4, NI, 0, 0.5, 52);
	sbi_mcmc_rhat(x, 4, NI, 1, &rhat);
	n = sbi_mcmc_modes(x, 4, NI, 1, mode, &within);
	printf("mcmc: chains 0.5 sd apart: modes %zu, within %.4f = pooled %.4f\n", n, within, rhat);
	CHECK(n == 1 && within == rhat);
	free(x);

	/* Two dimensions: apart in the second only; chain 2 drifts. */
	double *a = ar1(3, NI, 0, 0, 53), *b = ar1(3, NI, 0, 0, 54), *ab = malloc(3 * NI * 2 * sizeof *ab);
	for (size_t i = 0; i < 3 * NI; i++)
		ab[2 * i] = a[i], ab[2 * i + 1] = b[i] + (i >= 2 * NI ? 10 + 4.0 * (double)(i - 2 * NI) / NI : 0);
	n = sbi_mcmc_modes(ab, 3, NI, 2, mode, &within);
	printf("mcmc: a drifting chain apart: modes %zu, within %.3f\n", n, within);
	CHECK(n == 2 && mode[0] == 0 && mode[1] == 0 && mode[2] == 1 && within > 1.1);

	/* Too few iterations to tell: one mode. Out of memory: 0, nothing leaks. */
	n = sbi_mcmc_modes(ab, 3, 3, 2, mode, &within);
	CHECK(n == 1 && mode[0] == 0 && mode[2] == 0 && isnan(within));
	long live = sbi_test_live_blocks();
	for (long k = 0; k < 4; k++) {
		sbi_test_fail_alloc_after(k);
		n = sbi_mcmc_modes(ab, 3, NI, 2, mode, &within);
		sbi_test_fail_alloc_after(-1);
		CHECK(n == 0 && isnan(within) && sbi_test_live_blocks() == live);
	}
	free(a);
	free(b);
	free(ab);
}

TEST(draws_by_chain_layout)
{
	/* 3 chains, d = 2, 7 rows: sweeps 0 and 1 complete, row 6 dropped. */
	double s[7 * 2], dr[6 * 2];
	for (int i = 0; i < 14; i++)
		s[i] = i;
	CHECK(sbi_mcmc_draws_by_chain(s, 7, 3, 2, dr) == 2);
	/* chain c, iteration t is row t * 3 + c */
	for (int c = 0; c < 3; c++)
		for (int t = 0; t < 2; t++)
			for (int j = 0; j < 2; j++)
				CHECK(dr[(c * 2 + t) * 2 + j] == s[(t * 3 + c) * 2 + j]);
}

/* ---- starting points ---- */

enum { NCAND = 2000 };

/* Candidates uniform on [-10, 10]^2, log density favouring a disc of
 * radius ~0.5 around (5, 5) by a factor e^50 over the rest. */
static void
candidates(double *cand, double *ld)
{
	gsl_rng *r = sbi_rng_alloc();
	sbi_rng_set_stream(r, 51, SBI_STREAM_PRIOR, 0);
	for (int i = 0; i < NCAND; i++) {
		cand[2 * i] = gsl_ran_flat(r, -10, 10);
		cand[2 * i + 1] = gsl_ran_flat(r, -10, 10);
		double dx = cand[2 * i] - 5, dy = cand[2 * i + 1] - 5;
		ld[i] = -0.5 * (dx * dx + dy * dy) / 0.25 - 1000;
	}
	ld[7] = -INFINITY;
	ld[8] = NAN;
	gsl_rng_free(r);
}

TEST(pick_starts_favoured_region)
{
	static double cand[NCAND * 2], ld[NCAND];
	double s1[10 * 2], s2[10 * 2], s3[10 * 2];
	sbi_err err;
	size_t inside = 0;

	candidates(cand, ld);
	for (int i = 0; i < NCAND; i++) {
		double dx = cand[2 * i] - 5, dy = cand[2 * i + 1] - 5;
		inside += dx * dx + dy * dy < 4;
	}
	printf("mcmc: %zu of %d candidates within 2 of (5, 5)\n", inside, NCAND);
	CHECK(inside >= 20);
	CHECK(sbi_mcmc_pick_starts(cand, ld, NCAND, 2, 10, 7, 0, s1, &err) == SBI_OK);
	CHECK(sbi_mcmc_pick_starts(cand, ld, NCAND, 2, 10, 7, 0, s2, &err) == SBI_OK);
	CHECK(sbi_mcmc_pick_starts(cand, ld, NCAND, 2, 10, 8, 0, s3, &err) == SBI_OK);
	CHECK(memcmp(s1, s2, sizeof s1) == 0);
	CHECK(memcmp(s1, s3, sizeof s1) != 0);
	for (int c = 0; c < 10; c++) {
		double dx = s1[2 * c] - 5, dy = s1[2 * c + 1] - 5;
		CHECK(dx * dx + dy * dy < 4);
		for (int k = 0; k < c; k++)  /* without replacement */
			CHECK(s1[2 * c] != s1[2 * k] || s1[2 * c + 1] != s1[2 * k + 1]);
	}
}

/* Resampling frequencies follow the weights: 3 candidates with weights
 * 1 : 2 : 7 picked one at a time over many seeds. */
TEST(pick_starts_frequencies)
{
	double cand[3] = { 10, 20, 30 }, ld[3] = { log(1.0) + 700, log(2.0) + 700, log(7.0) + 700 };
	int count[3] = { 0 };
	enum { NSEED = 20000 };

	for (uint64_t seed = 0; seed < NSEED; seed++) {
		double s;
		CHECK(sbi_mcmc_pick_starts(cand, ld, 3, 1, 1, seed, 0, &s, NULL) == SBI_OK);
		count[(int)(s / 10) - 1]++;
	}
	for (int i = 0; i < 3; i++) {
		double p = exp(ld[i] - 700) / 10;
		CHECK_NEAR(count[i] / (double)NSEED, p, 5 * sqrt(p * (1 - p) / NSEED));
	}
}

/* With fewer finite candidates than chains they are all used, then reused. */
TEST(pick_starts_few_candidates)
{
	double cand[4] = { 1, 2, 3, 4 }, ld[4] = { 0, -INFINITY, -3, NAN }, s[5];
	int seen1 = 0, seen3 = 0;
	sbi_err err;

	CHECK(sbi_mcmc_pick_starts(cand, ld, 4, 1, 5, 1, 0, s, &err) == SBI_OK);
	for (int c = 0; c < 5; c++) {
		CHECK(s[c] == 1 || s[c] == 3);
		seen1 += s[c] == 1, seen3 += s[c] == 3;
	}
	CHECK(seen1 >= 2 && seen3 >= 2);
	CHECK(s[0] != s[1] && s[2] != s[3]);
	ld[0] = ld[2] = -INFINITY;
	CHECK(sbi_mcmc_pick_starts(cand, ld, 4, 1, 5, 1, 0, s, &err) == SBI_EINVAL);
	CHECK_CONTAINS(err.msg, "none of the 4 candidates has a finite log density");
	ld[2] = INFINITY;
	CHECK(sbi_mcmc_pick_starts(cand, ld, 4, 1, 5, 1, 0, s, &err) == SBI_EINVAL);
	CHECK_CONTAINS(err.msg, "candidate 3 has log density +inf");
}

/* ---- errors ---- */

TEST(error_start_outside_support)
{
	dens t = { .target = GAUSS, .minus_inf = 3 };
	double start[8 * 2];
	sbi_err err;

	starts_near(start, 8, 2, g_mean, 1.0);
	for (int k = 0; k < 2; k++) {
		sbi_mcmc_kind kind = k ? SBI_MCMC_ENSEMBLE : SBI_MCMC_SLICE;
		t.calls = 0;
		sbi_mcmc *m = sbi_mcmc_alloc(kind, 2, 8, logdens, &t, 1, 0, &err);
		CHECK(sbi_mcmc_init(m, start, &err) == SBI_EINVAL);
		CHECK_CONTAINS(err.msg, "start of chain 3 has log density -inf");
		CHECK(sbi_mcmc_iterate(m, &err) == SBI_EINVAL);
		CHECK_CONTAINS(err.msg, "call sbi_mcmc_init before iterating");
		CHECK(sbi_mcmc_run(m, 1, 1, 0, NULL, &err) == SBI_EINVAL);
		start[5] = NAN;
		CHECK(sbi_mcmc_init(m, start, &err) == SBI_EINVAL);
		CHECK_CONTAINS(err.msg, "start of chain 3 has a non-finite coordinate 2");
		start[5] = 0;
		sbi_mcmc_free(m);
	}
}

TEST(error_callback_fails)
{
	double start[8 * 2], samples[100 * 2];
	sbi_err err;

	starts_near(start, 8, 2, g_mean, 1.0);
	for (int k = 0; k < 2; k++) {
		sbi_mcmc_kind kind = k ? SBI_MCMC_ENSEMBLE : SBI_MCMC_SLICE;
		dens t = { .target = GAUSS, .fail_at = 1 };
		sbi_mcmc *m = sbi_mcmc_alloc(kind, 2, 8, logdens, &t, 1, 0, &err);
		CHECK(sbi_mcmc_init(m, start, &err) == SBI_ESIM);
		CHECK_CONTAINS(err.msg, "callback failed with code -6 (ESIM)");
		/* Fail within the first sweeps; the state stays consistent. */
		t.calls = 0;
		t.fail_at = 1 + (k ? 5 : 2 * 6);
		CHECK(sbi_mcmc_init(m, start, &err) == SBI_OK);
		CHECK(sbi_mcmc_run(m, 0, 1, 100, samples, &err) == SBI_ESIM);
		CHECK_CONTAINS(err.msg, "callback failed");
		const double *x = sbi_mcmc_state(m), *lp = sbi_mcmc_logdens(m);
		for (int c = 0; c < 8; c++)
			CHECK(lp[c] == log_gauss(x + 2 * c));
		CHECK(sbi_mcmc_iterate(m, &err) == SBI_OK);
		sbi_mcmc_free(m);
	}
}

/* NaN from the callback means outside the support: the box with NaN
 * outside gives the same samples as with -inf. +inf is an error. */
TEST(nan_is_outside_plus_inf_is_error)
{
	double start[8 * 2], c[2] = { 0.5, 0.5 };
	sbi_err err;

	starts_near(start, 8, 2, c, 0.45);
	for (int k = 0; k < 2; k++) {
		sbi_mcmc_kind kind = k ? SBI_MCMC_ENSEMBLE : SBI_MCMC_SLICE;
		dens t1 = { .target = BOX }, t2 = { .target = BOX, .nan_outside = 1 };
		double *a = sample(kind, &t1, 2, 8, start, 5, 50, 1, 2000, NULL);
		double *b = sample(kind, &t2, 2, 8, start, 5, 50, 1, 2000, NULL);
		CHECK(memcmp(a, b, 2000 * 2 * sizeof *a) == 0);
		free(a);
		free(b);

		dens t3 = { .target = BOX, .plus_inf_at = 3 };
		sbi_mcmc *m = sbi_mcmc_alloc(kind, 2, 8, logdens, &t3, 1, 0, &err);
		CHECK(sbi_mcmc_init(m, start, &err) == SBI_OK);
		CHECK(sbi_mcmc_run(m, 10, 1, 0, NULL, &err) == SBI_EINVAL);
		CHECK_CONTAINS(err.msg, "the log density is +inf");
		sbi_mcmc_free(m);
	}
}

TEST(error_bad_arguments)
{
	dens t = { .target = GAUSS };
	sbi_err err;

	CHECK(sbi_mcmc_alloc(SBI_MCMC_ENSEMBLE, 3, 7, logdens, &t, 1, 0, &err) == NULL);
	CHECK(err.code == SBI_EINVAL);
	CHECK_CONTAINS(err.msg, "nchains = 7 walkers is too few for dimension 3");
	CHECK_CONTAINS(err.msg, "at least 2 d + 2 = 8 walkers");
	sbi_mcmc *m = sbi_mcmc_alloc(SBI_MCMC_ENSEMBLE, 3, 8, logdens, &t, 1, 0, &err);
	CHECK(m != NULL);
	sbi_mcmc_free(m);
	CHECK(sbi_mcmc_alloc(SBI_MCMC_SLICE, 0, 4, logdens, &t, 1, 0, &err) == NULL);
	CHECK_CONTAINS(err.msg, "dimension must be at least 1");
	CHECK(sbi_mcmc_alloc(SBI_MCMC_SLICE, 2, 0, logdens, &t, 1, 0, &err) == NULL);
	CHECK_CONTAINS(err.msg, "nchains must be at least 1");
	CHECK(sbi_mcmc_alloc(SBI_MCMC_SLICE, 2, 4, NULL, &t, 1, 0, &err) == NULL);
	CHECK_CONTAINS(err.msg, "callback is missing");
	CHECK(sbi_mcmc_alloc(SBI_MCMC_SLICE, SIZE_MAX / 4, SIZE_MAX / 4, logdens, &t, 1, 0, &err) == NULL);
	CHECK(err.code == SBI_ENOMEM);

	m = sbi_mcmc_alloc(SBI_MCMC_SLICE, 2, 4, logdens, &t, 1, 0, &err);
	double start[8] = { 1, -2, 1.1, -2, 0.9, -1, 1, -3 }, s[8];
	CHECK(sbi_mcmc_init(m, start, &err) == SBI_OK);
	CHECK(sbi_mcmc_run(m, 0, 0, 4, s, &err) == SBI_EINVAL);
	CHECK_CONTAINS(err.msg, "thin must be at least 1");
	CHECK(sbi_mcmc_run(m, 0, 1, 4, NULL, &err) == SBI_EINVAL);
	sbi_mcmc_free(m);
}

/* The ensemble refuses starts that do not span the space. */
TEST(error_degenerate_ensemble)
{
	dens t = { .target = GAUSS };
	double start[6 * 2];
	sbi_err err;
	sbi_mcmc *m = sbi_mcmc_alloc(SBI_MCMC_ENSEMBLE, 2, 6, logdens, &t, 1, 0, &err);

	for (int c = 0; c < 6; c++)  /* on the line x2 = 2 x1 - 4 */
		start[2 * c] = 1 + 0.1 * c, start[2 * c + 1] = 2 * start[2 * c] - 4;
	CHECK(sbi_mcmc_init(m, start, &err) == SBI_EINVAL);
	CHECK_CONTAINS(err.msg, "coordinate 2 is an affine function");
	for (int c = 0; c < 6; c++)
		start[2 * c] = 1;
	CHECK(sbi_mcmc_init(m, start, &err) == SBI_EINVAL);
	CHECK_CONTAINS(err.msg, "coordinate 1 is the same in every start");
	start[4] = 1.5;
	CHECK(sbi_mcmc_init(m, start, &err) == SBI_OK);
	sbi_mcmc_free(m);
}

/* ---- determinism, batching, run semantics ---- */

TEST(determinism)
{
	double start[16 * 2];

	starts_near(start, 16, 2, g_mean, 1.0);
	for (int k = 0; k < 2; k++) {
		sbi_mcmc_kind kind = k ? SBI_MCMC_ENSEMBLE : SBI_MCMC_SLICE;
		dens t = { .target = GAUSS };
		double *a = sample(kind, &t, 2, 16, start, 99, 50, 2, 1000, NULL);
		double *b = sample(kind, &t, 2, 16, start, 99, 50, 2, 1000, NULL);
		double *c = sample(kind, &t, 2, 16, start, 100, 50, 2, 1000, NULL);
		CHECK(memcmp(a, b, 1000 * 2 * sizeof *a) == 0);
		CHECK(memcmp(a, c, 1000 * 2 * sizeof *a) != 0);
		free(a);
		free(b);
		free(c);
	}
}

/* One slice sweep of 20 chains in 2-D: every callback carries the points of
 * all chains still active, so the calls are a small fraction of the points
 * (unbatched, calls would equal points). */
TEST(slice_batches_chains)
{
	dens t = { .target = GAUSS };
	double start[20 * 2];
	sbi_err err;

	starts_near(start, 20, 2, g_mean, 1.0);
	sbi_mcmc *m = sbi_mcmc_alloc(SBI_MCMC_SLICE, 2, 20, logdens, &t, 5, 0, &err);
	CHECK(sbi_mcmc_init(m, start, &err) == SBI_OK);
	CHECK(t.calls == 1 && t.evals == 20);
	CHECK(sbi_mcmc_run(m, 50, 1, 0, NULL, &err) == SBI_OK);
	uint64_t c0 = t.calls, e0 = t.evals;
	CHECK(sbi_mcmc_iterate(m, &err) == SBI_OK);
	uint64_t calls = t.calls - c0, evals = t.evals - e0;
	printf("mcmc: one slice sweep of 20 chains in 2-D: %llu callbacks, %llu points, "
	    "largest batch %zu\n", (unsigned long long)calls, (unsigned long long)evals,
	    t.max_batch);
	CHECK(evals >= 2 * 20 * 2);  /* at least one end and one draw per update */
	CHECK(calls * 5 < evals);
	CHECK(t.max_batch <= 40);
	CHECK(sbi_mcmc_evaluations(m) == t.evals && sbi_mcmc_calls(m) == t.calls);
	sbi_mcmc_free(m);
}

/* run keeps the states after every thin-th sweep, chain-interleaved, with a
 * partial last sweep; the ensemble costs 2 callbacks a sweep. */
TEST(run_thinning_and_layout)
{
	dens t = { .target = GAUSS };
	double start[6 * 2], s[17 * 2];
	sbi_err err;

	starts_near(start, 6, 2, g_mean, 1.0);
	sbi_mcmc *m = sbi_mcmc_alloc(SBI_MCMC_ENSEMBLE, 2, 6, logdens, &t, 3, 0, &err);
	CHECK(sbi_mcmc_init(m, start, &err) == SBI_OK);
	CHECK(sbi_mcmc_run(m, 4, 3, 17, s, &err) == SBI_OK);
	/* 17 rows = 3 sweeps of 6 rows (the last one partial) = 9 sweeps. */
	CHECK(t.calls == 1 + 2 * (4 + 9));
	CHECK(t.evals == 6 + 6 * (4 + 9));
	CHECK(memcmp(s + 12 * 2, sbi_mcmc_state(m), 5 * 2 * sizeof *s) == 0);
	double a = sbi_mcmc_acceptance(m);
	CHECK(a > 0 && a < 1);
	CHECK(sbi_mcmc_width(m) == NULL);
	sbi_mcmc_free(m);
}

/* ---- out of memory ---- */

TEST(out_of_memory)
{
	dens t = { .target = GAUSS };
	double start[8 * 2], cand[8 * 2], ld[8], s[4 * 2];
	long live = sbi_test_live_blocks();
	int done = 0, failures = 0;

	starts_near(start, 8, 2, g_mean, 1.0);
	starts_near(cand, 8, 2, g_mean, 1.0);
	for (int i = 0; i < 8; i++)
		ld[i] = log_gauss(cand + 2 * i);
	for (long n = 0; n < 20 && !done; n++) {
		sbi_err e1, e2;
		sbi_test_fail_alloc_after(n);
		sbi_mcmc *m = sbi_mcmc_alloc(SBI_MCMC_ENSEMBLE, 2, 8, logdens, &t, 1, 0, &e1);
		int rc = sbi_mcmc_pick_starts(cand, ld, 8, 2, 4, 1, 0, s, &e2);
		sbi_test_fail_alloc_after(-1);
		CHECK(m != NULL || e1.code == SBI_ENOMEM);
		CHECK(rc == SBI_OK || rc == SBI_ENOMEM);
		if (m != NULL) {
			CHECK(sbi_mcmc_init(m, start, &e1) == SBI_OK);
			CHECK(sbi_mcmc_iterate(m, &e1) == SBI_OK);
		}
		done = m != NULL && rc == SBI_OK;
		failures += !done;
		sbi_mcmc_free(m);
		CHECK(sbi_test_live_blocks() == live);
	}
	CHECK(done);
	CHECK(failures > 0);
}
