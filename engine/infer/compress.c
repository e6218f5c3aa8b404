/* Summary compressors' linear algebra (sbi/compress.h). */
#include "sbi/compress.h"

#include "sbi/alloc.h"

/* GSL's CBLAS declarations (its headers clash with <cblas.h>); the calls
 * link to OpenBLAS, as GSL's own do (meson.build). */
#include <gsl/gsl_cblas.h>
#include <gsl/gsl_eigen.h>
#include <gsl/gsl_errno.h>
#include <gsl/gsl_linalg.h>
#include <gsl/gsl_matrix.h>

#include <math.h>
#include <string.h>

/* Rows centered per block of the covariance: 2 MB of scratch at d = 50. */
#define BLOCK_ROWS 4096

int
sbi_compress_linear(const sbi_mat *x, const double *offset, const sbi_mat *w, sbi_mat *out, sbi_err *err)
{
	size_t n = x->nrow, d = x->ncol, k = w->ncol;
	if (w->nrow != d || out->nrow != n || out->ncol != k)
		return sbi_err_set(err, SBI_EINVAL, "the map is %zu x %zu but the data have %zu columns (output %zu x %zu)",
		    w->nrow, k, d, out->nrow, out->ncol);
	if (n == 0 || k == 0)
		return SBI_OK;
	if (d == 0) {
		memset(out->data, 0, n * k * sizeof *out->data);
		return SBI_OK;
	}
	cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)k, (int)d, 1.0, x->data, (int)d,
	    w->data, (int)k, 0.0, out->data, (int)k);
	if (offset == NULL)
		return SBI_OK;
	double *c = sbi_calloc(k, sizeof *c);
	if (c == NULL)
		return sbi_err_set(err, SBI_ENOMEM, "out of memory");
	for (size_t j = 0; j < d; j++)
		for (size_t a = 0; a < k; a++)
			c[a] += offset[j] * sbi_mat_row(w, j)[a];
	for (size_t i = 0; i < n; i++) {
		double *r = sbi_mat_row(out, i);
		for (size_t a = 0; a < k; a++)
			r[a] -= c[a];
	}
	sbi_free(c);
	return SBI_OK;
}

int
sbi_compress_covariance(const sbi_mat *x, double *mean, sbi_mat *cov, sbi_err *err)
{
	size_t n = x->nrow, d = x->ncol;
	if (cov->nrow != d || cov->ncol != d)
		return sbi_err_set(err, SBI_EINVAL, "the covariance must be %zu x %zu", d, d);
	if (n < 2)
		return sbi_err_set(err, SBI_EINVAL, "a covariance needs at least 2 rows, got %zu", n);
	memset(mean, 0, d * sizeof *mean);
	for (size_t i = 0; i < n; i++) {
		const double *r = sbi_mat_row(x, i);
		for (size_t j = 0; j < d; j++) {
			if (!isfinite(r[j]))
				return sbi_err_set(err, SBI_EINVAL, "row %zu, column %zu is %g; the data must be finite",
				    i + 1, j + 1, r[j]);
			mean[j] += r[j];
		}
	}
	for (size_t j = 0; j < d; j++)
		mean[j] /= (double)n;
	memset(cov->data, 0, d * d * sizeof *cov->data);
	if (d == 0)
		return SBI_OK;
	size_t rows = n < BLOCK_ROWS ? n : BLOCK_ROWS;
	double *blk = sbi_malloc(rows * d * sizeof *blk);
	if (blk == NULL)
		return sbi_err_set(err, SBI_ENOMEM, "out of memory");
	for (size_t i0 = 0; i0 < n; i0 += rows) {
		size_t m = n - i0 < rows ? n - i0 : rows;
		for (size_t i = 0; i < m; i++) {
			const double *r = sbi_mat_row(x, i0 + i);
			for (size_t j = 0; j < d; j++)
				blk[i * d + j] = r[j] - mean[j];
		}
		/* Upper triangle of cov += blk^T blk. */
		cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)d, (int)m, 1.0, blk, (int)d, 1.0,
		    cov->data, (int)d);
	}
	sbi_free(blk);
	for (size_t a = 0; a < d; a++)
		for (size_t b = a; b < d; b++) {
			double v = sbi_mat_row(cov, a)[b] / (double)(n - 1);
			sbi_mat_row(cov, a)[b] = v;
			sbi_mat_row(cov, b)[a] = v;
		}
	return SBI_OK;
}

/* The eigenvalues (descending) and eigenvectors (columns of vec) of the
 * symmetric d x d matrix a (destroyed). */
static int
symmetric_eigen(gsl_matrix *a, gsl_vector *val, gsl_matrix *vec, sbi_err *err)
{
	gsl_eigen_symmv_workspace *ws = gsl_eigen_symmv_alloc(a->size1);
	if (ws == NULL)
		return sbi_err_set(err, SBI_ENOMEM, "out of memory");
	gsl_error_handler_t *old = gsl_set_error_handler_off(); /* errors are return codes here */
	int rc = gsl_eigen_symmv(a, val, vec, ws);
	gsl_set_error_handler(old);
	gsl_eigen_symmv_free(ws);
	if (rc != GSL_SUCCESS)
		return sbi_err_set(err, SBI_EINVAL, "the eigendecomposition failed: %s", gsl_strerror(rc));
	gsl_eigen_symmv_sort(val, vec, GSL_EIGEN_SORT_VAL_DESC);
	return SBI_OK;
}

int
sbi_compress_pca(const sbi_mat *x, size_t k, int standardize, int whiten, sbi_mat *w, double *offset,
                 double *eigval, double *total, sbi_err *err)
{
	size_t d = x->ncol;
	if (k < 1 || k > d || w->nrow != d || w->ncol != k)
		return sbi_err_set(err, SBI_EINVAL, "components must be from 1 to %zu (the data's columns), got %zu", d, k);
	/* One block: cov, the eigenvectors, the scales, the eigenvalues. */
	double *buf = sbi_malloc((2 * d * d + 2 * d) * sizeof *buf);
	if (buf == NULL)
		return sbi_err_set(err, SBI_ENOMEM, "out of memory");
	double *scale = buf + 2 * d * d, *val = scale + d;
	sbi_mat cov = { d, d, buf, 0 };
	int rc = sbi_compress_covariance(x, offset, &cov, err);
	/* Standardized: the correlation matrix, D^-1 C D^-1 with D the sds
	 * (1 for a constant column). */
	for (size_t j = 0; j < d; j++) {
		double s = standardize ? sqrt(sbi_mat_row(&cov, j)[j]) : 1.0;
		scale[j] = s > 0 ? s : 1.0;
	}
	for (size_t a = 0; a < d && standardize && rc == SBI_OK; a++)
		for (size_t b = 0; b < d; b++)
			sbi_mat_row(&cov, a)[b] /= scale[a] * scale[b];
	gsl_matrix_view a = gsl_matrix_view_array(buf, d, d), v = gsl_matrix_view_array(buf + d * d, d, d);
	gsl_vector_view ev = gsl_vector_view_array(val, d);
	if (rc == SBI_OK)
		rc = symmetric_eigen(&a.matrix, &ev.vector, &v.matrix, err);
	if (rc == SBI_OK) {
		*total = 0;
		for (size_t c = 0; c < d; c++)
			*total += val[c];
		for (size_t c = 0; c < k && rc == SBI_OK; c++) {
			eigval[c] = val[c];
			if (whiten && !(val[c] > 1e-12 * (val[0] > 0 ? val[0] : 1)))
				rc = sbi_err_set(err, SBI_EINVAL, "component %zu has no variance (eigenvalue %g) and cannot be "
				    "whitened; ask for fewer components or whiten = false", c + 1, val[c]);
			size_t top = 0; /* the sign: the entry of largest magnitude is positive */
			for (size_t j = 1; j < d; j++)
				if (fabs(gsl_matrix_get(&v.matrix, j, c)) > fabs(gsl_matrix_get(&v.matrix, top, c)))
					top = j;
			double sgn = gsl_matrix_get(&v.matrix, top, c) < 0 ? -1.0 : 1.0;
			double f = whiten && rc == SBI_OK ? 1.0 / sqrt(val[c]) : 1.0;
			for (size_t j = 0; j < d; j++)
				sbi_mat_row(w, j)[c] = sgn * f * gsl_matrix_get(&v.matrix, j, c) / scale[j];
		}
	}
	sbi_free(buf);
	return rc;
}

int
sbi_compress_moped(const sbi_mat *cov, const sbi_mat *dmu, int gram_schmidt, sbi_mat *w, sbi_err *err)
{
	size_t d = cov->nrow, p = dmu->nrow;
	if (cov->ncol != d || dmu->ncol != d || w->nrow != d || w->ncol != p || d == 0)
		return sbi_err_set(err, SBI_EINVAL, "MOPED: the covariance is %zu x %zu, the derivatives %zu x %zu",
		    d, cov->ncol, p, dmu->ncol);
	double *buf = sbi_malloc((d * d + 2 * d) * sizeof *buf);
	if (buf == NULL)
		return sbi_err_set(err, SBI_ENOMEM, "out of memory");
	memcpy(buf, cov->data, d * d * sizeof *buf);
	double *u = buf + d * d, *b = u + d;
	gsl_matrix_view l = gsl_matrix_view_array(buf, d, d);
	gsl_error_handler_t *old = gsl_set_error_handler_off();
	int rc = gsl_linalg_cholesky_decomp1(&l.matrix) == GSL_SUCCESS ? SBI_OK
	    : sbi_err_set(err, SBI_EINVAL, "MOPED: the covariance of the data is not positive definite (use more "
	    "covariance simulations than data values, or fewer data values)");
	for (size_t i = 0; i < p && rc == SBI_OK; i++) {
		const double *mi = sbi_mat_row(dmu, i);
		gsl_vector_const_view rhs = gsl_vector_const_view_array(mi, d);
		gsl_vector_view uv = gsl_vector_view_array(u, d);
		gsl_linalg_cholesky_solve(&l.matrix, &rhs.vector, &uv.vector); /* u = C^-1 mu_,i */
		double norm2 = 0;
		for (size_t j = 0; j < d; j++) {
			norm2 += mi[j] * u[j];
			b[j] = u[j];
		}
		double first = norm2;
		if (gram_schmidt) {
			for (size_t q = 0; q < i; q++) {
				double proj = 0;
				for (size_t j = 0; j < d; j++)
					proj += mi[j] * sbi_mat_row(w, j)[q];
				for (size_t j = 0; j < d; j++)
					b[j] -= proj * sbi_mat_row(w, j)[q];
				norm2 -= proj * proj;
			}
			if (!(norm2 > 1e-10 * first) || !(first > 0)) {
				rc = sbi_err_set(err, SBI_EINVAL, "MOPED: the mean's derivative along parameter %zu is %s; the "
				    "mean of the data does not identify it at the fiducial point", i + 1,
				    first > 0 ? "a combination of the earlier ones" : "zero");
				break;
			}
		}
		double f = gram_schmidt ? 1.0 / sqrt(norm2) : 1.0;
		for (size_t j = 0; j < d; j++)
			sbi_mat_row(w, j)[i] = f * b[j];
	}
	gsl_set_error_handler(old);
	sbi_free(buf);
	return rc;
}
