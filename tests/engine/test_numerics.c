/* ABC selection, column statistics and matrix files. */
#include <math.h>
#include <stdlib.h>

#include "check.h"
#include "sbi/abc.h"
#include "sbi/alloc.h"
#include "sbi/fsutil.h"
#include "sbi/io.h"
#include "sbi/stats.h"

TEST(abc_distances_standardized)
{
	sbi_mat *x = sbi_mat_alloc(3, 2);
	double v[] = { 1, 2, 3, 4, NAN, 0 };
	memcpy(x->data, v, sizeof v);
	double obs[] = { 1, 0 }, scale[] = { 2, 4 }, d[3];
	sbi_abc_distances(x, obs, scale, d);
	CHECK_NEAR(d[0], sqrt(0 + 0.25), 1e-15);
	CHECK_NEAR(d[1], sqrt(1 + 1), 1e-15);
	CHECK(isinf(d[2]));
	sbi_mat_free(x);
}

TEST(abc_select_quantile_ties_and_epsilon)
{
	double d[] = { 0.5, 0.1, INFINITY, 0.1, 0.3, 0.9 };
	size_t *idx, n;
	double eps;
	sbi_err err = { 0 };
	CHECK(sbi_abc_select(d, 6, 0.5, 0, &idx, &n, &eps, &err) == SBI_OK);
	CHECK(n == 3 && idx[0] == 1 && idx[1] == 3 && idx[2] == 4 && eps == 0.3);
	sbi_free(idx);
	/* Ties broken by index: the first of the two 0.1s. */
	CHECK(sbi_abc_select(d, 6, 1.0 / 6, 0, &idx, &n, &eps, &err) == SBI_OK);
	CHECK(n == 1 && idx[0] == 1);
	sbi_free(idx);
	CHECK(sbi_abc_select(d, 6, 0, 0.5, &idx, &n, &eps, &err) == SBI_OK);
	CHECK(n == 4 && eps == 0.5);
	sbi_free(idx);
	/* Quantile 1 never accepts infinite distances. */
	CHECK(sbi_abc_select(d, 6, 1.0, 0, &idx, &n, &eps, &err) == SBI_OK);
	CHECK(n == 5);
	sbi_free(idx);
	CHECK(sbi_abc_select(d, 6, 0, 0.01, &idx, &n, &eps, &err) == SBI_EINVAL);
	CHECK_CONTAINS(err.msg, "nearest is at 0.1");
}

TEST(stats_column_summary_and_scales)
{
	sbi_mat *m = sbi_mat_alloc(101, 2);
	for (int i = 0; i <= 100; i++) {
		m->data[2 * i] = i;
		m->data[2 * i + 1] = 7;
	}
	sbi_col_summary s;
	sbi_err err = { 0 };
	CHECK(sbi_stats_column(m, 0, &s, &err) == SBI_OK);
	CHECK_NEAR(s.mean, 50, 1e-12);
	CHECK_NEAR(s.q05, 5, 1e-12);
	CHECK_NEAR(s.q50, 50, 1e-12);
	CHECK_NEAR(s.q95, 95, 1e-12);
	CHECK_NEAR(s.std, sqrt(101.0 * 102 / 12), 1e-9); /* sample sd of 0..100 */
	double sc[2];
	CHECK(sbi_stats_scales(m, "std", sc, &err) == SBI_OK);
	CHECK_NEAR(sc[0], s.std, 1e-12);
	CHECK(sc[1] == 1.0); /* constant column */
	CHECK(sbi_stats_scales(m, "mad", sc, &err) == SBI_OK);
	CHECK_NEAR(sc[0], 1.4826 * 25, 1e-9);
	CHECK(sbi_stats_scales(m, "iqr", sc, &err) == SBI_EINVAL);
	sbi_mat_free(m);
}

/* Log-scale candidates: exp of an evenly spread grid (right-skewed, the
 * log symmetric), a positive symmetric column, a column with a zero, and
 * a positive column whose long tail is on the left (skewness below 1). */
TEST(stats_log_candidates)
{
	size_t n = 201;
	sbi_mat *m = sbi_mat_alloc(n, 4);
	for (size_t i = 0; i < n; i++) {
		double u = -3 + 6.0 * (double)i / (double)(n - 1);
		m->data[4 * i] = exp(u);
		m->data[4 * i + 1] = 100 + u;
		m->data[4 * i + 2] = u + 3;        /* 0 at i = 0 */
		m->data[4 * i + 3] = 30 - exp(u); /* > 0, skewed to the left */
	}
	int pos[4], skew[4];
	sbi_err err = { 0 };
	CHECK(sbi_stats_log_candidates(m, pos, skew, &err) == SBI_OK);
	CHECK(pos[0] && skew[0]);
	CHECK(pos[1] && !skew[1]);
	CHECK(!pos[2] && !skew[2]);
	CHECK(pos[3] && !skew[3]);
	sbi_mat_free(m);
}

TEST(io_csv_and_npy_round_trip)
{
	char dir[] = "/tmp/sbi-test-io.XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	char *csv = sbi_path_join(dir, "m.csv"), *npy = sbi_path_join(dir, "m.npy");
	sbi_mat *m = sbi_mat_alloc(2, 3), *r = NULL;
	double v[] = { 0.1, -2.5e-300, 3, 1.0 / 3, 1e300, -0.0 };
	memcpy(m->data, v, sizeof v);
	const char *names[] = { "a", "b", "c" };
	sbi_err err = { 0 };
	char **hdr = NULL;
	size_t nh = 0;
	CHECK(sbi_csv_write(csv, m, names, &err) == SBI_OK);
	CHECK(sbi_csv_read(csv, &r, &hdr, &nh, &err) == SBI_OK);
	CHECK(r && r->nrow == 2 && r->ncol == 3 && nh == 3);
	for (int i = 0; r && i < 6; i++)
		CHECK(r->data[i] == v[i]);
	CHECK_STR(nh == 3 ? hdr[2] : NULL, "c");
	for (size_t i = 0; i < nh; i++)
		sbi_free(hdr[i]);
	sbi_free(hdr);
	sbi_mat_free(r);
	r = NULL;
	CHECK(sbi_npy_write(npy, m, &err) == SBI_OK);
	CHECK(sbi_npy_read(npy, &r, &err) == SBI_OK);
	CHECK(r && r->nrow == 2 && r->ncol == 3);
	for (int i = 0; r && i < 6; i++)
		CHECK(memcmp(&r->data[i], &v[i], sizeof(double)) == 0);
	sbi_mat_free(r);
	sbi_mat_free(m);
	sbi_free(csv);
	sbi_free(npy);
}

TEST(io_csv_errors_name_line_and_column)
{
	char dir[] = "/tmp/sbi-test-io.XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	char *p = sbi_path_join(dir, "bad.csv");
	sbi_err err = { 0 };
	sbi_mat *r = NULL;
	sbi_fs_write_atomic(p, "x,y\n1,2\n3,oops\n", 15, &err);
	CHECK(sbi_csv_read(p, &r, NULL, NULL, &err) == SBI_EINVAL);
	CHECK_CONTAINS(err.msg, "bad.csv:3: column 2");
	sbi_fs_write_atomic(p, "1,2\n3\n", 6, &err);
	CHECK(sbi_csv_read(p, &r, NULL, NULL, &err) == SBI_EINVAL);
	CHECK_CONTAINS(err.msg, "bad.csv:2: 1 values, expected 2");
	sbi_free(p);
	CHECK(sbi_csv_read("/nonexistent/x.csv", &r, NULL, NULL, &err) == SBI_ENOTFOUND);
}
