/* Tests of the prior distributions (engine/numerics/prior.c): sampling moments,
 * log densities against independent formulas, normalization, supports,
 * parameter validation, descriptions and out-of-memory behaviour. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include <gsl/gsl_randist.h>

#include "check.h"
#include "sbi/alloc.h"
#include "sbi/prior.h"
#include "sbi/rng.h"

#define NDRAW 200000
#define MAXD 8
#define LOG_2PI 1.83787706640934548356065947281123527
#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* a equals b to 12 digits (absolutely when |b| < 1). */
#define CHECK_CLOSE(a, b) CHECK_NEAR(a, b, 1e-12 * fmax(1, fabs((double)(b))))

static void
show(const sbi_prior *p)
{
	char buf[1024];
	sbi_prior_describe(p, buf, sizeof buf);
	fprintf(stderr, "    prior: %s\n", buf);
}

/* ---- sampling moments ---- */

/* Sample mean and variance of component j of x (n rows of d), and the
 * standard error of the variance (from the fourth central moment). */
static void
sample_stats(const double *x, size_t n, size_t d, size_t j, double *mean, double *var,
    double *var_se)
{
	double m = 0, m2 = 0, m4 = 0;

	for (size_t k = 0; k < n; k++)
		m += x[k * d + j];
	m /= (double)n;
	for (size_t k = 0; k < n; k++) {
		double dx = x[k * d + j] - m;
		m2 += dx * dx;
		m4 += dx * dx * dx * dx;
	}
	m2 /= (double)n;
	m4 /= (double)n;
	*mean = m;
	*var = m2 * (double)n / (double)(n - 1);
	*var_se = sqrt((m4 - m2 * m2) / (double)n);
}

static double *
draw(const sbi_prior *p, uint64_t seed, size_t n)
{
	size_t d = sbi_prior_dim(p);
	double *x = malloc(n * d * sizeof *x);
	gsl_rng *r = sbi_rng_alloc();
	size_t outside = 0;

	sbi_rng_set_stream(r, seed, SBI_STREAM_PRIOR, 0);
	for (size_t k = 0; k < n; k++) {
		sbi_prior_sample(p, r, x + k * d);
		if (!sbi_prior_in_support(p, x + k * d) ||
		    !isfinite(sbi_prior_log_density(p, x + k * d)))
			outside++;
	}
	CHECK(outside == 0);
	gsl_rng_free(r);
	return x;
}

/* Every component's sample mean and variance over NDRAW draws lie within
 * 5 standard errors of the exact ones. */
static void
check_moments(const sbi_prior *p, uint64_t seed)
{
	size_t d = sbi_prior_dim(p);
	double mean[MAXD], var[MAXD], m, v, v_se;
	int before = check_failures;
	double *x = draw(p, seed, NDRAW);

	sbi_prior_mean(p, mean);
	sbi_prior_variance(p, var);
	for (size_t j = 0; j < d; j++) {
		sample_stats(x, NDRAW, d, j, &m, &v, &v_se);
		CHECK_NEAR(m, mean[j], 5 * sqrt(var[j] / NDRAW));
		CHECK_NEAR(v, var[j], 5 * v_se);
	}
	free(x);
	if (check_failures != before)
		show(p);
}

TEST(moments_uniform)
{
	double low[] = { -1, 10, 0 }, high[] = { 3, 10.5, 1e-3 };
	sbi_prior *p = sbi_prior_uniform_alloc(3, low, high, NULL);
	double mean[3], var[3];

	sbi_prior_mean(p, mean);
	sbi_prior_variance(p, var);
	CHECK_CLOSE(mean[0], 1);
	CHECK_CLOSE(var[0], 16.0 / 12);
	CHECK_CLOSE(mean[1], 10.25);
	CHECK_CLOSE(var[1], 0.25 / 12);
	check_moments(p, 1);
	sbi_prior_free(p);
}

TEST(moments_normal)
{
	double mean[] = { 1, -50 }, sd[] = { 2, 0.01 };
	sbi_prior *p = sbi_prior_normal_alloc(2, mean, sd, NULL);
	double m[2], v[2];

	sbi_prior_mean(p, m);
	sbi_prior_variance(p, v);
	CHECK(m[0] == 1 && m[1] == -50);
	CHECK_CLOSE(v[0], 4);
	CHECK_CLOSE(v[1], 1e-4);
	check_moments(p, 2);
	sbi_prior_free(p);
}

TEST(moments_lognormal)
{
	double mu[] = { 0.2, -1 }, sigma[] = { 0.5, 0.25 };
	sbi_prior *p = sbi_prior_lognormal_alloc(2, mu, sigma, NULL);
	double m[2], v[2];

	sbi_prior_mean(p, m);
	sbi_prior_variance(p, v);
	CHECK_CLOSE(m[0], exp(0.2 + 0.125));
	CHECK_CLOSE(v[0], (exp(0.25) - 1) * exp(0.4 + 0.25));
	check_moments(p, 3);
	sbi_prior_free(p);
}

TEST(moments_gamma)
{
	double shape[] = { 2.5, 0.5, 30 }, scale[] = { 0.7, 3, 0.1 };
	sbi_prior *p = sbi_prior_gamma_alloc(3, shape, scale, NULL);
	double m[3], v[3];

	sbi_prior_mean(p, m);
	sbi_prior_variance(p, v);
	CHECK_CLOSE(m[0], 1.75);
	CHECK_CLOSE(v[0], 2.5 * 0.49);
	CHECK_CLOSE(m[1], 1.5);
	CHECK_CLOSE(v[1], 4.5);
	check_moments(p, 4);
	sbi_prior_free(p);
}

TEST(moments_beta)
{
	double a[] = { 2, 0.5, 1 }, b[] = { 5, 0.5, 1 };
	sbi_prior *p = sbi_prior_beta_alloc(3, a, b, NULL);
	double m[3], v[3];

	sbi_prior_mean(p, m);
	sbi_prior_variance(p, v);
	CHECK_CLOSE(m[0], 2.0 / 7);
	CHECK_CLOSE(v[0], 10.0 / (49 * 8));
	CHECK_CLOSE(m[1], 0.5);
	CHECK_CLOSE(v[1], 0.25 / 2);
	CHECK_CLOSE(v[2], 1.0 / 12);
	check_moments(p, 5);
	sbi_prior_free(p);
}

TEST(moments_exponential)
{
	double rate[] = { 2.5, 0.1 };
	sbi_prior *p = sbi_prior_exponential_alloc(2, rate, NULL);
	double m[2], v[2];

	sbi_prior_mean(p, m);
	sbi_prior_variance(p, v);
	CHECK_CLOSE(m[0], 0.4);
	CHECK_CLOSE(v[0], 0.16);
	CHECK_CLOSE(m[1], 10);
	CHECK_CLOSE(v[1], 100);
	check_moments(p, 6);
	sbi_prior_free(p);
}

static const double cov3[9] = {
	4, 1.2, -0.6,
	1.2, 2.25, 0.45,
	-0.6, 0.45, 1,
};
static const double mean3[3] = { 1, -2, 0.5 };

TEST(moments_mvn)
{
	sbi_prior *p = sbi_prior_mvn_alloc(3, mean3, cov3, NULL);
	double m[3], v[3];

	sbi_prior_mean(p, m);
	sbi_prior_variance(p, v);
	for (int i = 0; i < 3; i++) {
		CHECK(m[i] == mean3[i]);
		CHECK(v[i] == cov3[i * 3 + i]);
	}
	check_moments(p, 7);
	sbi_prior_free(p);
}

TEST(mvn_sample_covariance)
{
	sbi_prior *p = sbi_prior_mvn_alloc(3, mean3, cov3, NULL);
	double *x = draw(p, 8, NDRAW), m[3] = { 0, 0, 0 };

	for (size_t k = 0; k < NDRAW; k++)
		for (size_t i = 0; i < 3; i++)
			m[i] += x[k * 3 + i] / NDRAW;
	for (size_t i = 0; i < 3; i++) {
		for (size_t j = 0; j < 3; j++) {
			double c = 0, sij = cov3[i * 3 + j];
			for (size_t k = 0; k < NDRAW; k++)
				c += (x[k * 3 + i] - m[i]) * (x[k * 3 + j] - m[j]);
			c /= NDRAW - 1;
			/* Var of a Gaussian sample covariance: (s_ii s_jj + s_ij^2) / n. */
			double se = sqrt((cov3[i * 3 + i] * cov3[j * 3 + j] + sij * sij) / NDRAW);
			CHECK_NEAR(c, sij, 5 * se);
		}
	}
	free(x);
	sbi_prior_free(p);
}

TEST(moments_joint)
{
	double low[] = { 0 }, high[] = { 1 }, shape[] = { 3 }, scale[] = { 2 };
	double mean[] = { -1, 1 }, cov[] = { 1, -0.5, -0.5, 2 };
	sbi_prior *blocks[] = {
		sbi_prior_uniform_alloc(1, low, high, NULL),
		sbi_prior_mvn_alloc(2, mean, cov, NULL),
		sbi_prior_gamma_alloc(1, shape, scale, NULL),
	};
	sbi_prior *p = sbi_prior_joint_alloc(3, blocks, NULL);
	double m[4], v[4];

	CHECK(sbi_prior_dim(p) == 4);
	sbi_prior_mean(p, m);
	sbi_prior_variance(p, v);
	CHECK(m[0] == 0.5 && m[1] == -1 && m[2] == 1 && m[3] == 6);
	CHECK(v[1] == 1 && v[2] == 2 && v[3] == 12);
	CHECK_CLOSE(v[0], 1.0 / 12);
	check_moments(p, 9);
	sbi_prior_free(p);
}

TEST(sampling_is_reproducible)
{
	double mean[] = { 0, 0 }, cov[] = { 1, 0.5, 0.5, 1 };
	sbi_prior *p = sbi_prior_mvn_alloc(2, mean, cov, NULL);
	gsl_rng *r1 = sbi_rng_alloc(), *r2 = sbi_rng_alloc();
	double a[2], b[2], c[2];

	sbi_rng_set_stream(r1, 42, SBI_STREAM_PRIOR, 7);
	sbi_rng_set_stream(r2, 42, SBI_STREAM_PRIOR, 7);
	sbi_prior_sample(p, r1, a);
	sbi_prior_sample(p, r2, b);
	CHECK(a[0] == b[0] && a[1] == b[1]);
	sbi_rng_set_stream(r2, 42, SBI_STREAM_PRIOR, 8);
	sbi_prior_sample(p, r2, c);
	CHECK(a[0] != c[0]);
	gsl_rng_free(r1);
	gsl_rng_free(r2);
	sbi_prior_free(p);
}

/* ---- log densities against independent formulas ---- */

TEST(log_density_uniform)
{
	double low[] = { -1, 10 }, high[] = { 3, 10.5 }, x[] = { 0.3, 10.1 };
	sbi_prior *p = sbi_prior_uniform_alloc(2, low, high, NULL);

	CHECK_CLOSE(sbi_prior_log_density(p, x), -log(4 * 0.5));
	CHECK_CLOSE(sbi_prior_log_density(p, x),
	    log(gsl_ran_flat_pdf(0.3, -1, 3)) + log(gsl_ran_flat_pdf(10.1, 10, 10.5)));
	sbi_prior_free(p);
}

TEST(log_density_normal)
{
	double mean[] = { 1, -50 }, sd[] = { 2, 0.01 }, x[] = { 0.3, -49.99 };
	sbi_prior *p = sbi_prior_normal_alloc(2, mean, sd, NULL);
	double z0 = (0.3 - 1) / 2, z1 = (-49.99 + 50) / 0.01;
	double want = -0.5 * z0 * z0 - log(2.0) - 0.5 * z1 * z1 - log(0.01) - LOG_2PI;

	CHECK_CLOSE(sbi_prior_log_density(p, x), want);
	CHECK_CLOSE(sbi_prior_log_density(p, x),
	    log(gsl_ran_gaussian_pdf(-0.7, 2)) + log(gsl_ran_gaussian_pdf(-49.99 + 50, 0.01)));
	sbi_prior_free(p);
}

TEST(log_density_lognormal)
{
	double mu[] = { 0.2, -1 }, sigma[] = { 0.5, 0.25 }, x[] = { 1.7, 0.2 };
	sbi_prior *p = sbi_prior_lognormal_alloc(2, mu, sigma, NULL);
	double want = 0;

	for (int i = 0; i < 2; i++) {
		double z = (log(x[i]) - mu[i]) / sigma[i];
		want += -log(x[i]) - log(sigma[i]) - 0.5 * LOG_2PI - 0.5 * z * z;
	}
	CHECK_CLOSE(sbi_prior_log_density(p, x), want);
	CHECK_CLOSE(sbi_prior_log_density(p, x),
	    log(gsl_ran_lognormal_pdf(1.7, 0.2, 0.5)) + log(gsl_ran_lognormal_pdf(0.2, -1, 0.25)));
	sbi_prior_free(p);
}

TEST(log_density_gamma)
{
	double k[] = { 2.5, 0.5 }, th[] = { 0.7, 3 }, x[] = { 1.3, 0.01 };
	sbi_prior *p = sbi_prior_gamma_alloc(2, k, th, NULL);
	double want = 0;

	for (int i = 0; i < 2; i++)
		want += (k[i] - 1) * log(x[i]) - x[i] / th[i] - lgamma(k[i]) - k[i] * log(th[i]);
	CHECK_CLOSE(sbi_prior_log_density(p, x), want);
	CHECK_CLOSE(sbi_prior_log_density(p, x),
	    log(gsl_ran_gamma_pdf(1.3, 2.5, 0.7)) + log(gsl_ran_gamma_pdf(0.01, 0.5, 3)));
	sbi_prior_free(p);
}

TEST(log_density_beta)
{
	double a[] = { 2, 0.5 }, b[] = { 5, 0.5 }, x[] = { 0.3, 0.999 };
	sbi_prior *p = sbi_prior_beta_alloc(2, a, b, NULL);
	double want = 0;

	for (int i = 0; i < 2; i++)
		want += (a[i] - 1) * log(x[i]) + (b[i] - 1) * log(1 - x[i]) +
		    lgamma(a[i] + b[i]) - lgamma(a[i]) - lgamma(b[i]);
	CHECK_CLOSE(sbi_prior_log_density(p, x), want);
	CHECK_CLOSE(sbi_prior_log_density(p, x),
	    log(gsl_ran_beta_pdf(0.3, 2, 5)) + log(gsl_ran_beta_pdf(0.999, 0.5, 0.5)));
	sbi_prior_free(p);
}

TEST(log_density_exponential)
{
	double rate[] = { 2.5, 0.1 }, x[] = { 0.4, 17 };
	sbi_prior *p = sbi_prior_exponential_alloc(2, rate, NULL);

	CHECK_CLOSE(sbi_prior_log_density(p, x), log(2.5) - 1 + log(0.1) - 1.7);
	CHECK_CLOSE(sbi_prior_log_density(p, x),
	    log(gsl_ran_exponential_pdf(0.4, 0.4)) + log(gsl_ran_exponential_pdf(17, 10)));
	sbi_prior_free(p);
}

/* The inverse and determinant of a 3 x 3 matrix by cofactors. */
static double
inverse3(const double *m, double *inv)
{
	double c[9] = {
		m[4] * m[8] - m[5] * m[7], m[2] * m[7] - m[1] * m[8], m[1] * m[5] - m[2] * m[4],
		m[5] * m[6] - m[3] * m[8], m[0] * m[8] - m[2] * m[6], m[2] * m[3] - m[0] * m[5],
		m[3] * m[7] - m[4] * m[6], m[1] * m[6] - m[0] * m[7], m[0] * m[4] - m[1] * m[3],
	};
	double det = m[0] * c[0] + m[1] * c[3] + m[2] * c[6];

	for (int i = 0; i < 9; i++)
		inv[i] = c[i] / det;
	return det;
}

TEST(log_density_mvn)
{
	sbi_prior *p = sbi_prior_mvn_alloc(3, mean3, cov3, NULL);
	double x[] = { 0.3, -1.1, 2 }, r[3], inv[9], q = 0;
	double det = inverse3(cov3, inv);

	for (int i = 0; i < 3; i++)
		r[i] = x[i] - mean3[i];
	for (int i = 0; i < 3; i++)
		for (int j = 0; j < 3; j++)
			q += r[i] * inv[i * 3 + j] * r[j];
	CHECK_CLOSE(det, 4 * 2.25 * 0.588);
	CHECK_CLOSE(sbi_prior_log_density(p, x), -0.5 * q - 0.5 * log(det) - 1.5 * LOG_2PI);
	CHECK_CLOSE(sbi_prior_log_density(p, mean3), -0.5 * log(det) - 1.5 * LOG_2PI);
	sbi_prior_free(p);
}

TEST(mvn_1d_is_normal)
{
	double mean[] = { 1 }, var[] = { 4 }, sd[] = { 2 };
	sbi_prior *m = sbi_prior_mvn_alloc(1, mean, var, NULL);
	sbi_prior *n = sbi_prior_normal_alloc(1, mean, sd, NULL);
	double xs[] = { -3, 0, 1, 2.5, 40 };

	for (size_t i = 0; i < N_OF(xs); i++)
		CHECK_CLOSE(sbi_prior_log_density(m, &xs[i]), sbi_prior_log_density(n, &xs[i]));
	sbi_prior_free(m);
	sbi_prior_free(n);
}

/* ---- normalization ---- */

/* The midpoint rule for the integral of the density of a 1-d prior. */
static double
integrate1(const sbi_prior *p, double lo, double hi, size_t n)
{
	double h = (hi - lo) / (double)n, s = 0;

	for (size_t i = 0; i < n; i++) {
		double x = lo + ((double)i + 0.5) * h;
		s += exp(sbi_prior_log_density(p, &x));
	}
	return s * h;
}

/* Likewise for a 2-d prior over [x0, x1] x [y0, y1]. */
static double
integrate2(const sbi_prior *p, const double *box, size_t nx, size_t ny)
{
	double hx = (box[1] - box[0]) / (double)nx, hy = (box[3] - box[2]) / (double)ny;
	double s = 0, t[2];

	for (size_t i = 0; i < nx; i++) {
		t[0] = box[0] + ((double)i + 0.5) * hx;
		for (size_t j = 0; j < ny; j++) {
			t[1] = box[2] + ((double)j + 0.5) * hy;
			s += exp(sbi_prior_log_density(p, t));
		}
	}
	return s * hx * hy;
}

TEST(normalization_1d)
{
	double a[] = { 2.5 }, b[] = { 0.7 }, lo[] = { -1 }, hi[] = { 3 };
	double mu[] = { 0.2 }, sig[] = { 0.5 }, ba[] = { 2 }, bb[] = { 5 };
	sbi_prior *p;

	p = sbi_prior_uniform_alloc(1, lo, hi, NULL);
	CHECK_NEAR(integrate1(p, -2, 4, 600000), 1, 1e-9);
	sbi_prior_free(p);
	p = sbi_prior_normal_alloc(1, a, b, NULL);
	CHECK_NEAR(integrate1(p, -10, 15, 400000), 1, 1e-8);
	sbi_prior_free(p);
	p = sbi_prior_lognormal_alloc(1, mu, sig, NULL);
	CHECK_NEAR(integrate1(p, 0, 60, 400000), 1, 1e-7);
	sbi_prior_free(p);
	p = sbi_prior_gamma_alloc(1, a, b, NULL);
	CHECK_NEAR(integrate1(p, 0, 60, 400000), 1, 1e-7);
	sbi_prior_free(p);
	p = sbi_prior_beta_alloc(1, ba, bb, NULL);
	CHECK_NEAR(integrate1(p, 0, 1, 400000), 1, 1e-8);
	sbi_prior_free(p);
	p = sbi_prior_exponential_alloc(1, a, NULL);
	CHECK_NEAR(integrate1(p, 0, 30, 400000), 1, 1e-7);
	sbi_prior_free(p);
}

TEST(normalization_uniform_2d)
{
	double low[] = { 0, -2 }, high[] = { 0.5, 6 }, x[] = { 0.25, 0 };
	double box[] = { -1, 1, -3, 7 };
	sbi_prior *p = sbi_prior_uniform_alloc(2, low, high, NULL);

	CHECK_CLOSE(sbi_prior_log_density(p, x), -log(0.5 * 8));
	CHECK_CLOSE(exp(sbi_prior_log_density(p, x)) * 0.5 * 8, 1);
	/* Cell edges fall on the box edges, so the midpoint rule is exact. */
	CHECK_NEAR(integrate2(p, box, 400, 400), 1, 1e-9);
	sbi_prior_free(p);
}

TEST(normalization_joint_2d)
{
	double low[] = { -1 }, high[] = { 3 }, a[] = { 2 }, b[] = { 5 };
	double box[] = { -2, 4, 0, 1 }, x[] = { 0, 0.3 };
	sbi_prior *blocks[] = {
		sbi_prior_uniform_alloc(1, low, high, NULL),
		sbi_prior_beta_alloc(1, a, b, NULL),
	};
	sbi_prior *p = sbi_prior_joint_alloc(2, blocks, NULL);

	CHECK_CLOSE(sbi_prior_log_density(p, x), -log(4.0) + log(gsl_ran_beta_pdf(0.3, 2, 5)));
	CHECK_NEAR(integrate2(p, box, 600, 1000), 1, 1e-5);
	sbi_prior_free(p);
}

TEST(normalization_mvn_2d)
{
	double mean[] = { 0.5, -1 }, cov[] = { 1, 0.6, 0.6, 2 };
	double box[] = { -9.5, 10.5, -15, 13 };
	sbi_prior *p = sbi_prior_mvn_alloc(2, mean, cov, NULL);

	CHECK_NEAR(integrate2(p, box, 1000, 1000), 1, 1e-8);
	sbi_prior_free(p);
}

/* ---- supports ---- */

static void
check_point(const sbi_prior *p, double x, int inside, double lp)
{
	int before = check_failures;

	CHECK(sbi_prior_in_support(p, &x) == inside);
	if (isinf(lp))
		CHECK(sbi_prior_log_density(p, &x) == lp);
	else
		CHECK_CLOSE(sbi_prior_log_density(p, &x), lp);
	if (check_failures != before) {
		fprintf(stderr, "    at x = %a\n", x);
		show(p);
	}
}

TEST(support_uniform)
{
	double low[] = { -1 }, high[] = { 3 };
	sbi_prior *p = sbi_prior_uniform_alloc(1, low, high, NULL);

	check_point(p, -1, 1, -log(4.0));
	check_point(p, 3, 1, -log(4.0));
	check_point(p, nextafter(-1, -2), 0, -INFINITY);
	check_point(p, nextafter(3, 4), 0, -INFINITY);
	check_point(p, NAN, 0, -INFINITY);
	sbi_prior_free(p);
}

TEST(support_normal_mvn)
{
	double mean[] = { 0 }, sd[] = { 1 };
	sbi_prior *n = sbi_prior_normal_alloc(1, mean, sd, NULL);
	sbi_prior *m = sbi_prior_mvn_alloc(1, mean, sd, NULL);

	for (sbi_prior *p = n; p != NULL; p = p == n ? m : NULL) {
		check_point(p, 0, 1, -0.5 * LOG_2PI);
		check_point(p, -1e10, 1, -0.5 * LOG_2PI - 0.5e20);
		check_point(p, INFINITY, 0, -INFINITY);
		check_point(p, -INFINITY, 0, -INFINITY);
		check_point(p, NAN, 0, -INFINITY);
	}
	sbi_prior_free(n);
	sbi_prior_free(m);
}

TEST(support_lognormal)
{
	double mu[] = { 0.2 }, sigma[] = { 0.5 };
	sbi_prior *p = sbi_prior_lognormal_alloc(1, mu, sigma, NULL);
	double z = (log(DBL_TRUE_MIN) - 0.2) / 0.5;

	check_point(p, 0, 0, -INFINITY);
	check_point(p, -0.0, 0, -INFINITY);
	check_point(p, -1, 0, -INFINITY);
	check_point(p, DBL_TRUE_MIN, 1,
	    -log(DBL_TRUE_MIN) - log(0.5) - 0.5 * LOG_2PI - 0.5 * z * z);
	check_point(p, INFINITY, 0, -INFINITY);
	sbi_prior_free(p);
}

TEST(support_gamma_exponential)
{
	double k[] = { 2.5, 1, 0.5 }, th[] = { 0.7, 2, 3 }, rate[] = { 2.5 };
	sbi_prior *p;

	for (int i = 0; i < 3; i++) {
		p = sbi_prior_gamma_alloc(1, &k[i], &th[i], NULL);
		/* 0 is in the support; the density there is finite only for shape 1. */
		check_point(p, 0, 1, k[i] == 1 ? -log(2.0) : -INFINITY);
		check_point(p, -0.0, 1, k[i] == 1 ? -log(2.0) : -INFINITY);
		check_point(p, -DBL_TRUE_MIN, 0, -INFINITY);
		check_point(p, INFINITY, 0, -INFINITY);
		sbi_prior_free(p);
	}
	p = sbi_prior_exponential_alloc(1, rate, NULL);
	check_point(p, 0, 1, log(2.5));
	check_point(p, -DBL_TRUE_MIN, 0, -INFINITY);
	check_point(p, 1e-300, 1, log(2.5) - 2.5e-300);
	check_point(p, INFINITY, 0, -INFINITY);
	sbi_prior_free(p);
}

TEST(support_beta)
{
	double a[] = { 2, 1, 3, 1, 0.5 }, b[] = { 5, 3, 1, 1, 0.5 };
	/* log densities at 0 and at 1 */
	double at0[] = { -INFINITY, log(3.0), -INFINITY, 0, -INFINITY };
	double at1[] = { -INFINITY, -INFINITY, log(3.0), 0, -INFINITY };

	for (size_t i = 0; i < N_OF(a); i++) {
		sbi_prior *p = sbi_prior_beta_alloc(1, &a[i], &b[i], NULL);
		check_point(p, 0, 1, at0[i]);
		check_point(p, 1, 1, at1[i]);
		check_point(p, nextafter(0, -1), 0, -INFINITY);
		check_point(p, nextafter(1, 2), 0, -INFINITY);
		check_point(p, NAN, 0, -INFINITY);
		sbi_prior_free(p);
	}
}

/* Over a grid of awkward points, the log density is never NaN or +inf,
 * and it is -inf wherever the point is outside the support. */
static void
check_never_nan(const sbi_prior *p)
{
	static const double v[] = {
		NAN, -INFINITY, INFINITY, -DBL_MAX, DBL_MAX, -1, 0, -0.0, 0.5, 1, 2,
		DBL_TRUE_MIN, 1e-300, 1e300,
	};
	size_t n = N_OF(v), d = sbi_prior_dim(p), bad = 0;
	double x[2];

	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; j < (d == 2 ? n : 1); j++) {
			x[0] = v[i];
			x[1] = v[j];
			double lp = sbi_prior_log_density(p, x);
			if (isnan(lp) || lp == INFINITY || (!sbi_prior_in_support(p, x) && lp != -INFINITY))
				bad++;
		}
	}
	CHECK(bad == 0);
	if (bad)
		show(p);
}

TEST(log_density_never_nan)
{
	double one[] = { 1 }, half[] = { 0.5 }, two[] = { 2 }, zero[] = { 0 };
	double big[] = { -1e308, 1e308 }, diag[] = { 1, 0, 0, 1 };
	sbi_prior *ps[] = {
		sbi_prior_uniform_alloc(1, zero, one, NULL),
		sbi_prior_normal_alloc(1, one, two, NULL),
		sbi_prior_lognormal_alloc(1, zero, one, NULL),
		sbi_prior_gamma_alloc(1, half, two, NULL),
		sbi_prior_gamma_alloc(1, two, two, NULL),
		sbi_prior_gamma_alloc(1, one, two, NULL),
		sbi_prior_beta_alloc(1, half, two, NULL),
		sbi_prior_beta_alloc(1, one, one, NULL),
		sbi_prior_exponential_alloc(1, two, NULL),
		sbi_prior_mvn_alloc(2, big, diag, NULL),
	};

	for (size_t i = 0; i < N_OF(ps); i++) {
		check_never_nan(ps[i]);
		sbi_prior_free(ps[i]);
	}
}

/* ---- bad parameters ---- */

/* The call fn(..., &err) fails with SBI_EINVAL, a message containing
 * needle, and no leak. */
#define BAD(needle, fn, ...)                                                  \
	do {                                                                  \
		sbi_err e_;                                                   \
		sbi_err_clear(&e_);                                           \
		long live_ = sbi_test_live_blocks();                          \
		sbi_prior *p_ = fn(__VA_ARGS__, &e_);                         \
		CHECK(p_ == NULL);                                            \
		CHECK(e_.code == SBI_EINVAL);                                 \
		CHECK_CONTAINS(e_.msg, needle);                               \
		CHECK(sbi_test_live_blocks() == live_);                       \
		sbi_prior_free(p_);                                           \
	} while (0)

TEST(bad_dim)
{
	double x[] = { 1 };

	BAD("prior.uniform: dim must be at least 1", sbi_prior_uniform_alloc, 0, x, x);
	BAD("prior.normal: dim", sbi_prior_normal_alloc, 0, x, x);
	BAD("prior.mvn: dim", sbi_prior_mvn_alloc, 0, x, x);
	BAD("prior.lognormal: dim", sbi_prior_lognormal_alloc, 0, x, x);
	BAD("prior.gamma: dim", sbi_prior_gamma_alloc, 0, x, x);
	BAD("prior.beta: dim", sbi_prior_beta_alloc, 0, x, x);
	BAD("prior.exponential: dim", sbi_prior_exponential_alloc, 0, x);
}

TEST(bad_uniform)
{
	double low[] = { 0, 1 }, high[] = { 1, 0.5 }, nan2[] = { 0, NAN };
	double ok[] = { 1, 2 }, inf1[] = { INFINITY, 2 }, huge[] = { 1e308, 2 };
	double nhuge[] = { -1e308, 0 };

	BAD("prior.uniform: high[2] = 0.5 must be greater than low[2] = 1",
	    sbi_prior_uniform_alloc, 2, low, high);
	BAD("prior.uniform: high[1] = 0 must be greater than low[1] = 0",
	    sbi_prior_uniform_alloc, 2, low, low);
	BAD("prior.uniform: low[2] = nan must be a finite number",
	    sbi_prior_uniform_alloc, 2, nan2, ok);
	BAD("prior.uniform: high[1] = inf must be a finite number",
	    sbi_prior_uniform_alloc, 2, low, inf1);
	BAD("prior.uniform: high[1] - low[1] is too large",
	    sbi_prior_uniform_alloc, 2, nhuge, huge);
	BAD("prior.uniform: low is missing", sbi_prior_uniform_alloc, 2, NULL, ok);
	BAD("prior.uniform: high is missing", sbi_prior_uniform_alloc, 2, low, NULL);
}

TEST(bad_normal)
{
	double mean[] = { 0, 0 }, sd[] = { 0, 1 }, neg[] = { 1, -1 }, nan1[] = { NAN, 1 };
	double inf2[] = { 0, -INFINITY };

	BAD("prior.normal: std[1] = 0 must be positive", sbi_prior_normal_alloc, 2, mean, sd);
	BAD("prior.normal: std[2] = -1 must be positive", sbi_prior_normal_alloc, 2, mean, neg);
	BAD("prior.normal: std[1] = nan must be a finite number",
	    sbi_prior_normal_alloc, 2, mean, nan1);
	BAD("prior.normal: mean[2] = -inf must be a finite number",
	    sbi_prior_normal_alloc, 2, inf2, neg);
	BAD("prior.normal: std is missing", sbi_prior_normal_alloc, 2, mean, NULL);
}

TEST(bad_lognormal)
{
	double mu[] = { 0 }, zero[] = { 0 }, nan1[] = { NAN }, one[] = { 1 };

	BAD("prior.lognormal: sigma[1] = 0 must be positive",
	    sbi_prior_lognormal_alloc, 1, mu, zero);
	BAD("prior.lognormal: mu[1] = nan must be a finite number",
	    sbi_prior_lognormal_alloc, 1, nan1, one);
}

TEST(bad_gamma)
{
	double neg[] = { -1 }, one[] = { 1, 1 }, zero2[] = { 1, 0 }, inf1[] = { INFINITY };
	double huge[] = { 1e306 };

	BAD("prior.gamma: shape[1] = -1 must be positive", sbi_prior_gamma_alloc, 1, neg, one);
	BAD("prior.gamma: scale[2] = 0 must be positive", sbi_prior_gamma_alloc, 2, one, zero2);
	BAD("prior.gamma: shape[1] = inf must be a finite number",
	    sbi_prior_gamma_alloc, 1, inf1, one);
	BAD("prior.gamma: shape[1] = 1e+306 and scale[1] = 1 are out of range",
	    sbi_prior_gamma_alloc, 1, huge, one);
}

TEST(bad_beta)
{
	double zero[] = { 0, 1 }, one[] = { 1, 1 }, neg2[] = { 1, -2 }, nan1[] = { NAN, 1 };

	BAD("prior.beta: a[1] = 0 must be positive", sbi_prior_beta_alloc, 2, zero, one);
	BAD("prior.beta: b[2] = -2 must be positive", sbi_prior_beta_alloc, 2, one, neg2);
	BAD("prior.beta: b[1] = nan must be a finite number", sbi_prior_beta_alloc, 2, one, nan1);
}

TEST(bad_exponential)
{
	double zero[] = { 0 }, nan1[] = { 1, NAN }, neg[] = { -0.5 };

	BAD("prior.exponential: rate[1] = 0 must be positive",
	    sbi_prior_exponential_alloc, 1, zero);
	BAD("prior.exponential: rate[1] = -0.5 must be positive",
	    sbi_prior_exponential_alloc, 1, neg);
	BAD("prior.exponential: rate[2] = nan must be a finite number",
	    sbi_prior_exponential_alloc, 2, nan1);
	BAD("prior.exponential: rate is missing", sbi_prior_exponential_alloc, 1, NULL);
}

TEST(bad_mvn)
{
	double mean[] = { 0, 0 }, nanm[] = { 0, NAN };
	double asym[] = { 1, 0.3, 0.2, 1 }, indef[] = { 1, 2, 2, 1 };
	double sing[] = { 1, 1, 1, 1 }, negd[] = { -1, 0, 0, 1 }, zero[] = { 0, 0, 0, 0 };
	double nanc[] = { 1, 0, NAN, 1 }, id[] = { 1, 0, 0, 1 };

	BAD("prior.mvn: cov is not symmetric (cov[1][2] = 0.3, cov[2][1] = 0.2)",
	    sbi_prior_mvn_alloc, 2, mean, asym);
	BAD("prior.mvn: cov is not symmetric positive definite",
	    sbi_prior_mvn_alloc, 2, mean, indef);
	BAD("prior.mvn: cov is not symmetric positive definite", sbi_prior_mvn_alloc, 2, mean, sing);
	BAD("prior.mvn: cov is not symmetric positive definite", sbi_prior_mvn_alloc, 2, mean, negd);
	BAD("prior.mvn: cov is not symmetric positive definite", sbi_prior_mvn_alloc, 2, mean, zero);
	BAD("prior.mvn: cov[2][1] = nan must be a finite number",
	    sbi_prior_mvn_alloc, 2, mean, nanc);
	BAD("prior.mvn: mean[2] = nan must be a finite number", sbi_prior_mvn_alloc, 2, nanm, id);
	BAD("prior.mvn: cov is missing", sbi_prior_mvn_alloc, 2, mean, NULL);
}

TEST(mvn_tolerates_rounding_asymmetry)
{
	double mean[] = { 0, 0 }, cov[] = { 1, 0.3, nextafter(0.3, 1), 1 };
	sbi_err err;
	sbi_prior *p = sbi_prior_mvn_alloc(2, mean, cov, &err);

	CHECK(p != NULL);
	sbi_prior_free(p);
}

TEST(bad_joint)
{
	double low[] = { 0 }, high[] = { 1 };
	long live = sbi_test_live_blocks();
	sbi_prior *blocks[3];
	sbi_err err;

	BAD("prior.joint: needs at least one block", sbi_prior_joint_alloc, 0, blocks);
	BAD("prior.joint: needs at least one block", sbi_prior_joint_alloc, 1, NULL);
	/* The joint prior takes the other blocks and frees them on failure. */
	blocks[0] = sbi_prior_uniform_alloc(1, low, high, NULL);
	blocks[1] = NULL;
	blocks[2] = sbi_prior_uniform_alloc(1, low, high, NULL);
	sbi_err_clear(&err);
	CHECK(sbi_prior_joint_alloc(3, blocks, &err) == NULL);
	CHECK(err.code == SBI_EINVAL);
	CHECK_CONTAINS(err.msg, "prior.joint: block[2] is missing");
	CHECK(sbi_test_live_blocks() == live);
}

/* ---- kinds and descriptions ---- */

TEST(kinds)
{
	double low[] = { 0 }, high[] = { 1 };
	sbi_prior *b = sbi_prior_uniform_alloc(1, low, high, NULL);
	sbi_prior *j = sbi_prior_joint_alloc(1, &b, NULL);

	CHECK(sbi_prior_kind_of(j) == SBI_PRIOR_JOINT);
	CHECK_STR(sbi_prior_kind_name(SBI_PRIOR_UNIFORM), "uniform");
	CHECK_STR(sbi_prior_kind_name(SBI_PRIOR_NORMAL), "normal");
	CHECK_STR(sbi_prior_kind_name(SBI_PRIOR_MVN), "mvn");
	CHECK_STR(sbi_prior_kind_name(SBI_PRIOR_LOGNORMAL), "lognormal");
	CHECK_STR(sbi_prior_kind_name(SBI_PRIOR_GAMMA), "gamma");
	CHECK_STR(sbi_prior_kind_name(SBI_PRIOR_BETA), "beta");
	CHECK_STR(sbi_prior_kind_name(SBI_PRIOR_EXPONENTIAL), "exponential");
	CHECK_STR(sbi_prior_kind_name(SBI_PRIOR_JOINT), "joint");
	CHECK_STR(sbi_prior_kind_name((sbi_prior_kind)99), "unknown");
	sbi_prior_free(j);
}

TEST(describe_joint)
{
	double low[] = { 0 }, high[] = { 1.5 }, shape[] = { 2, 0.1 }, scale[] = { 3, 1e-300 };
	sbi_prior *blocks[] = {
		sbi_prior_uniform_alloc(1, low, high, NULL),
		sbi_prior_gamma_alloc(2, shape, scale, NULL),
	};
	sbi_prior *p = sbi_prior_joint_alloc(2, blocks, NULL);
	char want[512], got[512], small[10];

	snprintf(want, sizeof want,
	    "joint(uniform(dim=1;low=[%a];high=[%a]),gamma(dim=2;shape=[%a,%a];scale=[%a,%a]))",
	    low[0], high[0], shape[0], shape[1], scale[0], scale[1]);
	CHECK(sbi_prior_dim(p) == 3);
	CHECK(sbi_prior_describe(p, got, sizeof got) == strlen(want));
	CHECK_STR(got, want);
	/* snprintf semantics: the needed length, a truncated NUL-terminated prefix. */
	CHECK(sbi_prior_describe(p, NULL, 0) == strlen(want));
	CHECK(sbi_prior_describe(p, small, sizeof small) == strlen(want));
	CHECK(strlen(small) == sizeof small - 1 && strncmp(small, want, sizeof small - 1) == 0);
	CHECK(sbi_prior_describe(p, got, strlen(want)) == strlen(want));
	CHECK(strlen(got) == strlen(want) - 1);
	sbi_prior_free(p);
}

TEST(describe_each_kind)
{
	double a[] = { 0.25, 2 }, b[] = { 1, 3 }, cov[] = { 2, 0.5, 0.5, 1 };
	char got[512], want[512];
	sbi_prior *p;

	p = sbi_prior_mvn_alloc(2, a, cov, NULL);
	snprintf(want, sizeof want, "mvn(dim=2;mean=[%a,%a];cov=[[%a,%a],[%a,%a]])",
	    a[0], a[1], cov[0], cov[1], cov[2], cov[3]);
	sbi_prior_describe(p, got, sizeof got);
	CHECK_STR(got, want);
	sbi_prior_free(p);
	p = sbi_prior_exponential_alloc(1, b, NULL);
	sbi_prior_describe(p, got, sizeof got);
	CHECK_STR(got, "exponential(dim=1;rate=[0x1p+0])");
	sbi_prior_free(p);
	p = sbi_prior_beta_alloc(1, a, b, NULL);
	sbi_prior_describe(p, got, sizeof got);
	CHECK_STR(got, "beta(dim=1;a=[0x1p-2];b=[0x1p+0])");
	sbi_prior_free(p);
	p = sbi_prior_lognormal_alloc(1, a, b, NULL);
	sbi_prior_describe(p, got, sizeof got);
	CHECK_STR(got, "lognormal(dim=1;mu=[0x1p-2];sigma=[0x1p+0])");
	sbi_prior_free(p);
	p = sbi_prior_normal_alloc(1, a, b, NULL);
	sbi_prior_describe(p, got, sizeof got);
	CHECK_STR(got, "normal(dim=1;mean=[0x1p-2];std=[0x1p+0])");
	sbi_prior_free(p);
}

/* A prior of kind k (not joint) with parameters p1, p2 (cov for mvn). */
static sbi_prior *
make(sbi_prior_kind k, size_t dim, const double *p1, const double *p2)
{
	switch (k) {
	case SBI_PRIOR_UNIFORM: return sbi_prior_uniform_alloc(dim, p1, p2, NULL);
	case SBI_PRIOR_NORMAL: return sbi_prior_normal_alloc(dim, p1, p2, NULL);
	case SBI_PRIOR_MVN: return sbi_prior_mvn_alloc(dim, p1, p2, NULL);
	case SBI_PRIOR_LOGNORMAL: return sbi_prior_lognormal_alloc(dim, p1, p2, NULL);
	case SBI_PRIOR_GAMMA: return sbi_prior_gamma_alloc(dim, p1, p2, NULL);
	case SBI_PRIOR_BETA: return sbi_prior_beta_alloc(dim, p1, p2, NULL);
	case SBI_PRIOR_EXPONENTIAL: return sbi_prior_exponential_alloc(dim, p1, NULL);
	default: return NULL;
	}
}

static int
same_description(const sbi_prior *p, const sbi_prior *q)
{
	char a[1024], b[1024];

	sbi_prior_describe(p, a, sizeof a);
	sbi_prior_describe(q, b, sizeof b);
	return strcmp(a, b) == 0;
}

/* Moving one parameter by one ulp changes the description. */
static void
check_ulp(sbi_prior_kind k, const double *p1, const double *p2, size_t n1, size_t n2)
{
	sbi_prior *base = make(k, 2, p1, p2);
	double q1[4], q2[4];

	CHECK(base != NULL);
	for (size_t i = 0; i < n1 + n2; i++) {
		memcpy(q1, p1, n1 * sizeof(double));
		memcpy(q2, p2, n2 * sizeof(double));
		double *x = i < n1 ? &q1[i] : &q2[i - n1];
		*x = nextafter(*x, INFINITY);
		if (k == SBI_PRIOR_MVN && i == n1 + 1)
			q2[2] = q2[1]; /* keep cov symmetric */
		if (k == SBI_PRIOR_MVN && i == n1 + 2)
			q2[1] = q2[2];
		sbi_prior *q = make(k, 2, q1, q2);
		CHECK(q != NULL);
		if (q != NULL && same_description(base, q)) {
			CHECK(0 && "description ignores a one-ulp change");
			show(q);
		}
		sbi_prior_free(q);
	}
	sbi_prior_free(base);
}

TEST(describe_distinguishes_one_ulp)
{
	double p1[] = { 0.1, 0.7 }, p2[] = { 0.9, 1.3 }, cov[] = { 1, 0.3, 0.3, 2 };

	for (int k = SBI_PRIOR_UNIFORM; k <= SBI_PRIOR_EXPONENTIAL; k++) {
		if (k == SBI_PRIOR_MVN)
			check_ulp((sbi_prior_kind)k, p1, cov, 2, 4);
		else
			check_ulp((sbi_prior_kind)k, p1, p2, 2, k == SBI_PRIOR_EXPONENTIAL ? 0 : 2);
	}
	/* Same numbers, different kinds. */
	sbi_prior *a = make(SBI_PRIOR_NORMAL, 2, p1, p2), *b = make(SBI_PRIOR_LOGNORMAL, 2, p1, p2);
	sbi_prior *c = make(SBI_PRIOR_GAMMA, 2, p1, p2), *d = make(SBI_PRIOR_BETA, 2, p1, p2);
	CHECK(!same_description(a, b));
	CHECK(!same_description(c, d));
	sbi_prior_free(a);
	sbi_prior_free(b);
	sbi_prior_free(c);
	sbi_prior_free(d);
}

/* ---- out of memory ---- */

/* p is a working prior with code OK, or NULL with SBI_ENOMEM. */
static int
ok_or_enomem(const sbi_prior *p, const sbi_err *err)
{
	if (p != NULL) {
		double x[] = { 0.5, 0.5, 0.5, 0.5, 0.5, 0.5 };
		CHECK(err->code == SBI_OK);
		CHECK(isfinite(sbi_prior_log_density(p, x)));
		return 1;
	}
	CHECK(err->code == SBI_ENOMEM);
	CHECK_CONTAINS(err->msg, "out of memory");
	return 0;
}

/* A joint prior of uniform, gamma and mvn blocks, or NULL with err set. */
static sbi_prior *
make_joint(sbi_err *err)
{
	double low[] = { 0 }, high[] = { 1 }, shape[] = { 2, 3 }, scale[] = { 1, 1 };
	sbi_err e[3];
	sbi_prior *b[3];

	for (int i = 0; i < 3; i++)
		sbi_err_clear(&e[i]);
	b[0] = sbi_prior_uniform_alloc(1, low, high, &e[0]);
	b[1] = sbi_prior_gamma_alloc(2, shape, scale, &e[1]);
	b[2] = sbi_prior_mvn_alloc(3, mean3, cov3, &e[2]);
	for (int i = 0; i < 3; i++) {
		if (b[i] == NULL) {
			CHECK(e[i].code == SBI_ENOMEM);
			*err = e[i];
			for (int j = 0; j < 3; j++)
				sbi_prior_free(b[j]);
			return NULL;
		}
	}
	return sbi_prior_joint_alloc(3, b, err);
}

TEST(out_of_memory)
{
	long live = sbi_test_live_blocks();
	int done = 0, failures = 0;

	for (long n = 0; n < 100 && !done; n++) {
		sbi_err e1, e2;
		sbi_err_clear(&e1);
		sbi_err_clear(&e2);
		sbi_test_fail_alloc_after(n);
		sbi_prior *mvn = sbi_prior_mvn_alloc(3, mean3, cov3, &e1);
		sbi_prior *joint = make_joint(&e2);
		sbi_test_fail_alloc_after(-1);
		done = ok_or_enomem(mvn, &e1) & ok_or_enomem(joint, &e2);
		failures += !done;
		if (joint != NULL)
			CHECK(sbi_prior_dim(joint) == 6);
		sbi_prior_free(mvn);
		sbi_prior_free(joint);
		CHECK(sbi_test_live_blocks() == live);
	}
	CHECK(done);
	CHECK(failures > 0);
}
