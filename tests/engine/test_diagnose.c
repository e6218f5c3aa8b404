/* Tests of the diagnostics' statistics (engine/infer/diagnose.c): HPD
 * ranks with ties, the binomial coverage band against direct binomial
 * sums, the chi-square and Kolmogorov-Smirnov uniformity p-values against
 * closed forms and known outcomes, and error paths of the worker. */
#include <math.h>
#include <stdlib.h>

#include <gsl/gsl_cdf.h>

#include "check.h"
#include "sbi/diagnose.h"
#include "sbi/rng.h"

TEST(hpd_rank_counts_strictly_above)
{
	double lq[] = { -1, 0, 0, 2, 3 };
	CHECK_NEAR(sbi_diag_hpd_rank(lq, 5, 0), 0.4, 0);  /* ties are not above */
	CHECK_NEAR(sbi_diag_hpd_rank(lq, 5, 5), 0.0, 0);
	CHECK_NEAR(sbi_diag_hpd_rank(lq, 5, -9), 1.0, 0);
	CHECK_NEAR(sbi_diag_hpd_rank(lq, 0, 0), 0.0, 0);
}

TEST(binomial_band_is_the_binomial_quantiles)
{
	size_t n = 200;
	double levels[] = { 0.01, 0.2, 0.5, 0.9, 0.99 };
	for (size_t i = 0; i < 5; i++) {
		double lo, hi, p = levels[i];
		sbi_diag_binomial_band(p, n, 0.95, &lo, &hi);
		unsigned klo = (unsigned)lround(lo * (double)n), khi = (unsigned)lround(hi * (double)n);
		/* klo is the smallest k with P(K <= k) >= 0.025, khi with >= 0.975. */
		CHECK(gsl_cdf_binomial_P(klo, p, (unsigned)n) >= 0.025);
		CHECK(klo == 0 || gsl_cdf_binomial_P(klo - 1, p, (unsigned)n) < 0.025);
		CHECK(gsl_cdf_binomial_P(khi, p, (unsigned)n) >= 0.975);
		CHECK(khi == 0 || gsl_cdf_binomial_P(khi - 1, p, (unsigned)n) < 0.975);
		CHECK(lo <= p && hi >= p);
	}
	double lo, hi;
	sbi_diag_binomial_band(0.5, 200, 0.95, &lo, &hi);
	CHECK_NEAR(lo, 0.43, 0.006); /* normal approximation: 0.5 -+ 1.96 * 0.0354 */
	CHECK_NEAR(hi, 0.57, 0.006);
}

TEST(chi2_uniform)
{
	double flat[] = { 25, 25, 25, 25 }, zero[] = { 0, 0, 0 }, lop[] = { 40, 20, 20, 20 };
	CHECK_NEAR(sbi_diag_chi2_uniform_p(flat, 4), 1.0, 1e-12);
	CHECK_NEAR(sbi_diag_chi2_uniform_p(zero, 3), 1.0, 0);
	/* stat = (15^2 + 3 * 5^2) / 25 = 12 on 3 degrees of freedom */
	CHECK_NEAR(sbi_diag_chi2_uniform_p(lop, 4), gsl_cdf_chisq_Q(12, 3), 1e-14);
}

TEST(ks_uniform)
{
	double u[1000];
	gsl_rng *r = sbi_rng_alloc();
	sbi_rng_set_stream(r, 1, 1, 0);
	int small = 0;
	/* Uniform draws: p below 0.05 about 5% of the time. */
	for (int rep = 0; rep < 200; rep++) {
		for (size_t i = 0; i < 200; i++)
			u[i] = gsl_rng_uniform(r);
		small += sbi_diag_ks_uniform_p(u, 200) < 0.05;
	}
	CHECK(small >= 2 && small <= 22);
	for (size_t i = 0; i < 1000; i++) /* squared uniforms: far from uniform */
		u[i] = pow(gsl_rng_uniform(r), 2);
	CHECK(sbi_diag_ks_uniform_p(u, 1000) < 1e-10);
	for (size_t i = 1; i < 1000; i++) /* sorted in place */
		CHECK(u[i - 1] <= u[i]);
	gsl_rng_free(r);
}

TEST(worker_refuses_bad_specs)
{
	sbi_diag_spec s = { .kind = SBI_DIAG_NPE, .d = 0, .nsamples = 10 };
	sbi_err err = { 0 };
	CHECK(sbi_diag_worker_alloc(&s, &err) == NULL);
	CHECK(err.code == SBI_EINVAL);
	unsigned char junk[] = "not a model";
	s.d = 1;
	s.model = junk;
	s.model_len = sizeof junk;
	sbi_err_clear(&err);
	CHECK(sbi_diag_worker_alloc(&s, &err) == NULL);
	CHECK(err.code != SBI_OK);
	sbi_diag_worker_free(NULL);
}
