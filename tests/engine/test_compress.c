/* Summary compressors (engine/infer/compress.c): PCA against GSL's SVD of
 * the centered data, MOPED's weights against their defining properties and
 * the closed form, the linear map against a plain loop. */
#include <math.h>
#include <stdlib.h>

#include <gsl/gsl_linalg.h>
#include <gsl/gsl_matrix.h>
#include <gsl/gsl_randist.h>

#include "check.h"
#include "sbi/alloc.h"
#include "sbi/compress.h"
#include "sbi/rng.h"

/* n x d data with correlated columns of different scales: x = z M + c. */
static sbi_mat *
correlated_data(size_t n, size_t d, uint64_t seed)
{
	gsl_rng *r = sbi_rng_alloc();
	sbi_rng_set_stream(r, seed, 9, 0);
	sbi_mat *x = sbi_mat_alloc(n, d);
	double z[16];
	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; j < d; j++)
			z[j] = gsl_ran_gaussian(r, 1.0);
		for (size_t j = 0; j < d; j++) {
			double v = 10.0 * (double)j; /* a large mean: no cancellation allowed */
			for (size_t k = 0; k <= j; k++)
				v += z[k] * (0.3 + 0.2 * (double)k) * (double)(j + 1);
			sbi_mat_row(x, i)[j] = v;
		}
	}
	gsl_rng_free(r);
	return x;
}

/* The right singular vectors and singular values of the centered (and
 * optionally standardized) x, by gsl_linalg_SV_decomp. */
static void
svd_reference(const sbi_mat *x, int standardize, gsl_matrix *v, gsl_vector *s, double *sd)
{
	size_t n = x->nrow, d = x->ncol;
	gsl_matrix *a = gsl_matrix_alloc(n, d);
	gsl_vector *work = gsl_vector_alloc(d);
	for (size_t j = 0; j < d; j++) {
		double m = 0, q = 0;
		for (size_t i = 0; i < n; i++)
			m += sbi_mat_row(x, i)[j];
		m /= (double)n;
		for (size_t i = 0; i < n; i++)
			q += pow(sbi_mat_row(x, i)[j] - m, 2);
		sd[j] = standardize ? sqrt(q / (double)(n - 1)) : 1.0;
		for (size_t i = 0; i < n; i++)
			gsl_matrix_set(a, i, j, (sbi_mat_row(x, i)[j] - m) / sd[j]);
	}
	gsl_linalg_SV_decomp(a, v, s, work);
	gsl_vector_free(work);
	gsl_matrix_free(a);
}

static void
check_pca(int standardize, int whiten)
{
	size_t n = 2000, d = 6, k = 3;
	sbi_mat *x = correlated_data(n, d, 5);
	sbi_mat *w = sbi_mat_alloc(d, k);
	double offset[6], val[3], total, sd[6];
	sbi_err err = { 0 };
	CHECK(sbi_compress_pca(x, k, standardize, whiten, w, offset, val, &total, &err) == SBI_OK);
	gsl_matrix *v = gsl_matrix_alloc(d, d);
	gsl_vector *s = gsl_vector_alloc(d);
	svd_reference(x, standardize, v, s, sd);
	double sum = 0;
	for (size_t c = 0; c < d; c++)
		sum += pow(gsl_vector_get(s, c), 2) / (double)(n - 1);
	CHECK_NEAR(total, sum, 1e-9 * sum);
	for (size_t c = 0; c < k; c++) {
		double lambda = pow(gsl_vector_get(s, c), 2) / (double)(n - 1);
		CHECK_NEAR(val[c], lambda, 1e-9 * lambda);
		/* w's column, undone to the unit eigenvector, equals V's column up to sign. */
		double f = whiten ? sqrt(val[c]) : 1.0, dot = 0;
		for (size_t j = 0; j < d; j++)
			dot += sbi_mat_row(w, j)[c] * sd[j] * f * gsl_matrix_get(v, j, c);
		CHECK_NEAR(fabs(dot), 1.0, 1e-9);
	}
	/* The scores: uncorrelated, variance lambda_c (1 whitened), mean 0. */
	sbi_mat *t = sbi_mat_alloc(n, k), *cov = sbi_mat_alloc(k, k);
	double mean[3];
	CHECK(sbi_compress_linear(x, offset, w, t, &err) == SBI_OK);
	CHECK(sbi_compress_covariance(t, mean, cov, &err) == SBI_OK);
	for (size_t a = 0; a < k; a++) {
		CHECK_NEAR(mean[a], 0, 1e-9);
		for (size_t b = 0; b < k; b++)
			CHECK_NEAR(sbi_mat_row(cov, a)[b], a == b ? (whiten ? 1.0 : val[a]) : 0.0, 1e-8 * (1 + val[0]));
	}
	sbi_mat_free(t);
	sbi_mat_free(cov);
	gsl_matrix_free(v);
	gsl_vector_free(s);
	sbi_mat_free(w);
	sbi_mat_free(x);
}

TEST(pca_matches_gsl_svd)
{
	check_pca(1, 1);
	check_pca(1, 0);
	check_pca(0, 1);
	check_pca(0, 0);
}

TEST(pca_errors)
{
	sbi_mat *x = sbi_mat_alloc(10, 3), *w = sbi_mat_alloc(3, 4);
	double off[3], val[4], total;
	sbi_err err = { 0 };
	CHECK(sbi_compress_pca(x, 4, 1, 1, w, off, val, &total, &err) == SBI_EINVAL);
	CHECK_CONTAINS(err.msg, "components must be from 1 to 3");
	sbi_mat_free(w);
	w = sbi_mat_alloc(3, 1);
	/* Constant data: nothing to whiten, but the unwhitened map exists. */
	CHECK(sbi_compress_pca(x, 1, 1, 1, w, off, val, &total, &err) == SBI_EINVAL);
	CHECK_CONTAINS(err.msg, "has no variance");
	CHECK(sbi_compress_pca(x, 1, 1, 0, w, off, val, &total, &err) == SBI_OK);
	sbi_mat_row(x, 2)[1] = NAN;
	CHECK(sbi_compress_pca(x, 1, 1, 0, w, off, val, &total, &err) == SBI_EINVAL);
	CHECK_CONTAINS(err.msg, "row 3, column 2 is nan");
	sbi_mat_free(w);
	sbi_mat_free(x);
}

TEST(linear_map_matches_loop)
{
	sbi_mat *x = correlated_data(37, 5, 2), *w = sbi_mat_alloc(5, 2), *out = sbi_mat_alloc(37, 2);
	double off[5] = { 1, -2, 3, 0.5, 7 };
	for (size_t j = 0; j < 5; j++)
		for (size_t a = 0; a < 2; a++)
			sbi_mat_row(w, j)[a] = sin((double)(3 * j + a));
	sbi_err err = { 0 };
	CHECK(sbi_compress_linear(x, off, w, out, &err) == SBI_OK);
	for (size_t i = 0; i < 37; i++)
		for (size_t a = 0; a < 2; a++) {
			double v = 0;
			for (size_t j = 0; j < 5; j++)
				v += (sbi_mat_row(x, i)[j] - off[j]) * sbi_mat_row(w, j)[a];
			CHECK_NEAR(sbi_mat_row(out, i)[a], v, 1e-10 * (1 + fabs(v)));
		}
	sbi_mat *bad = sbi_mat_alloc(4, 2);
	CHECK(sbi_compress_linear(x, off, bad, out, &err) == SBI_EINVAL);
	sbi_mat_free(bad);
	sbi_mat_free(out);
	sbi_mat_free(w);
	sbi_mat_free(x);
}

/* MOPED on a known covariance C = L L^T and derivatives mu_,i: the vectors
 * are C-orthonormal (b_i . C b_j = delta_ij), b_1 is C^-1 mu_,1 normalized,
 * each b_i lies in the span of C^-1 mu_,1..i, and the score form is C^-1 mu_,i. */
TEST(moped_closed_form)
{
	enum { D = 5, P = 3 };
	sbi_mat *c = sbi_mat_alloc(D, D), *dmu = sbi_mat_alloc(P, D), *w = sbi_mat_alloc(D, P), *u = sbi_mat_alloc(D, P);
	double l[D][D] = { { 0 } };
	for (int a = 0; a < D; a++) {
		l[a][a] = 1.0 + 0.2 * a;
		if (a > 0)
			l[a][a - 1] = 0.5;
	}
	for (int a = 0; a < D; a++)
		for (int b = 0; b < D; b++)
			for (int k = 0; k < D; k++)
				sbi_mat_row(c, (size_t)a)[b] += l[a][k] * l[b][k];
	for (int i = 0; i < P; i++)
		for (int j = 0; j < D; j++)
			sbi_mat_row(dmu, (size_t)i)[j] = cos(1.0 + i * 2.1 + j * 0.7) + (i == j);
	sbi_err err = { 0 };
	CHECK(sbi_compress_moped(c, dmu, 1, w, &err) == SBI_OK);
	CHECK(sbi_compress_moped(c, dmu, 0, u, &err) == SBI_OK);
	/* The score form solves C u_i = mu_,i. */
	for (int i = 0; i < P; i++)
		for (int a = 0; a < D; a++) {
			double v = 0;
			for (int b = 0; b < D; b++)
				v += sbi_mat_row(c, (size_t)a)[b] * sbi_mat_row(u, (size_t)b)[i];
			CHECK_NEAR(v, sbi_mat_row(dmu, (size_t)i)[a], 1e-12);
		}
	for (int i = 0; i < P; i++)
		for (int j = 0; j < P; j++) {
			double v = 0;
			for (int a = 0; a < D; a++)
				for (int b = 0; b < D; b++)
					v += sbi_mat_row(w, (size_t)a)[i] * sbi_mat_row(c, (size_t)a)[b] * sbi_mat_row(w, (size_t)b)[j];
			CHECK_NEAR(v, i == j, 1e-12);
		}
	/* b_1 = C^-1 mu_,1 / sqrt(mu_,1 . C^-1 mu_,1). */
	double q = 0;
	for (int a = 0; a < D; a++)
		q += sbi_mat_row(dmu, 0)[a] * sbi_mat_row(u, (size_t)a)[0];
	for (int a = 0; a < D; a++)
		CHECK_NEAR(sbi_mat_row(w, (size_t)a)[0], sbi_mat_row(u, (size_t)a)[0] / sqrt(q), 1e-12);
	/* mu_,j . b_i = 0 for j < i: b_i carries no information already in t_1..t_i-1. */
	for (int i = 1; i < P; i++)
		for (int j = 0; j < i; j++) {
			double v = 0;
			for (int a = 0; a < D; a++)
				v += sbi_mat_row(dmu, (size_t)j)[a] * sbi_mat_row(w, (size_t)a)[i];
			CHECK_NEAR(v, 0, 1e-12);
		}
	/* A repeated derivative is not identified; a singular covariance is refused. */
	for (int a = 0; a < D; a++)
		sbi_mat_row(dmu, 2)[a] = 2 * sbi_mat_row(dmu, 0)[a];
	CHECK(sbi_compress_moped(c, dmu, 1, w, &err) == SBI_EINVAL);
	CHECK_CONTAINS(err.msg, "parameter 3 is a combination");
	for (int a = 0; a < D; a++)
		sbi_mat_row(c, 4)[a] = sbi_mat_row(c, (size_t)a)[4] = 0;
	CHECK(sbi_compress_moped(c, dmu, 1, w, &err) == SBI_EINVAL);
	CHECK_CONTAINS(err.msg, "not positive definite");
	sbi_mat_free(c);
	sbi_mat_free(dmu);
	sbi_mat_free(w);
	sbi_mat_free(u);
}
