/* The SVG plots (engine/plot): same bytes for the same input, balanced
 * markup, the 50% highest-density contour of a 2-D normal at the radius
 * theory gives, histogram heights as densities, the predictive plot's
 * bands, errors named, and no leak on any allocation failure. */
#include <math.h>
#include <stdlib.h>

#include "check.h"
#include "sbi/alloc.h"
#include "sbi/plot.h"
#include "sbi/rng.h"
#include "sbi/svg.h"

#include <gsl/gsl_randist.h>

/* n x d standard normal draws (seeded), scaled by sc and shifted by mu. */
static sbi_mat *
normals(size_t n, size_t d, double mu, double sc, uint64_t seed)
{
	sbi_mat *m = sbi_mat_alloc(n, d);
	gsl_rng *r = sbi_rng_alloc();
	sbi_rng_set_stream(r, seed, 3, 0);
	for (size_t i = 0; i < n * d; i++)
		m->data[i] = mu + sc * gsl_ran_ugaussian(r);
	gsl_rng_free(r);
	return m;
}

static size_t
count(const char *s, const char *needle)
{
	size_t k = 0;
	for (const char *p = strstr(s, needle); p; p = strstr(p + 1, needle))
		k++;
	return k;
}

/* Every opened element is closed: "<x ..>" and "</x>" or "/>". */
static int
balanced(const char *s)
{
	long depth = 0;
	for (const char *p = s; (p = strchr(p, '<')) != NULL; p++) {
		const char *e = strchr(p, '>');
		if (e == NULL)
			return 0;
		if (p[1] == '/')
			depth--;
		else if (e[-1] != '/')
			depth++;
		if (depth < 0)
			return 0;
	}
	return depth == 0;
}

TEST(corner_is_deterministic_and_labelled)
{
	sbi_mat *a = normals(10000, 5, 0, 1, 1), *b = normals(10000, 5, 0.5, 0.5, 2);
	const sbi_mat *post[2] = { a, b };
	const char *labels[5] = { "l", "m", "s", "alpha<1>", "b" }, *names[2] = { "exact", "NPE & co" };
	sbi_plot_corner_opts o = { .labels = labels, .names = names };
	char *s1 = NULL, *s2 = NULL;
	CHECK(sbi_plot_corner(post, 2, &o, &s1, NULL) == SBI_OK);
	CHECK(sbi_plot_corner(post, 2, &o, &s2, NULL) == SBI_OK);
	CHECK(s1 && s2 && strcmp(s1, s2) == 0);
	CHECK(balanced(s1));
	CHECK_CONTAINS(s1, ">alpha&lt;1&gt;</text>");
	CHECK_CONTAINS(s1, ">NPE &amp; co</text>");
	/* 5 diagonal histograms per posterior, two contours per pair and posterior. */
	CHECK(count(s1, "fill-opacity=\"0.15\"") == 10);
	CHECK(count(s1, "stroke-width=\"1.6\" stroke-opacity") == 2 * 10);
	CHECK(strstr(s1, "id=") == NULL);
	CHECK(strstr(s1, "nan") == NULL && strstr(s1, "inf") == NULL);
	sbi_free(s1);
	sbi_free(s2);
	o.scatter = 1;
	CHECK(sbi_plot_corner(post, 2, &o, &s1, NULL) == SBI_OK);
	CHECK(count(s1, "<circle") > 2 * 10 * 300);
	sbi_free(s1);
	sbi_mat_free(a);
	sbi_mat_free(b);
}

/* Contour points of the 50% region of N(0, I) lie at radius
 * sqrt(2 ln 2) = 1.177 (a little more: the smoothing widens by ~2%). */
TEST(contour_at_the_hdr_radius)
{
	sbi_mat *a = normals(200000, 2, 0, 1, 3);
	const sbi_mat *post[1] = { a };
	double lo[2] = { -4, -4 }, hi[2] = { 4, 4 };
	sbi_plot_corner_opts o = { .lower = lo, .upper = hi };
	char *s = NULL;
	CHECK(sbi_plot_corner(post, 1, &o, &s, NULL) == SBI_OK);
	/* The panel of row 2, column 1: x0 = 58, y0 = 12 + 130 + 8, size 130. */
	const char *p = strstr(s, "stroke-width=\"1.6\"");
	CHECK(p != NULL);
	const char *d = p;
	while (d > s && strncmp(d, "<path d=\"", 9) != 0)
		d--;
	d += 9;
	double sum = 0, sum2 = 0;
	size_t n = 0;
	while (d < p && (*d == 'M' || *d == 'L')) {
		char *end;
		double px = strtod(d + 1, &end), py = strtod(end, &end);
		double x = -4 + (px - 58) / 130 * 8, y = -4 + (150 + 130 - py) / 130 * 8, r = sqrt(x * x + y * y);
		sum += r;
		sum2 += r * r;
		n++;
		d = end;
	}
	CHECK(n > 40);
	double mean = sum / (double)n, sd = sqrt(sum2 / (double)n - mean * mean);
	CHECK_NEAR(mean, sqrt(2 * log(2)) * 1.02, 0.04);
	CHECK(sd < 0.06);
	sbi_free(s);
	sbi_mat_free(a);
}

/* The smallest y of the first path at or after p (a histogram's top). */
static double
path_top(const char *p)
{
	const char *d = strstr(p, "<path d=\"M");
	double ymin = 1e9;
	for (const char *q = d + 9; *q == 'M' || *q == 'L';) {
		char *end;
		strtod(q + 1, &end);
		double y = strtod(end, &end);
		ymin = fmin(ymin, y);
		q = end;
	}
	return ymin;
}

/* The diagonal shows densities: N(0, 0.5^2) from 100,000 draws peaks
 * twice as high as N(0, 1) from 200,000 (counts would be equal). */
TEST(histogram_is_a_density)
{
	sbi_mat *a = normals(200000, 1, 0, 1, 4), *b = normals(100000, 1, 0, 0.5, 5);
	const sbi_mat *post[2] = { a, b };
	double lo[1] = { -4 }, hi[1] = { 4 };
	sbi_plot_corner_opts o = { .lower = lo, .upper = hi, .bins = 40 };
	char *s = NULL;
	CHECK(sbi_plot_corner(post, 2, &o, &s, NULL) == SBI_OK);
	double base = 12 + 130, top_a = path_top(s), top_b = path_top(strstr(s, "<path d=\"M") + 1);
	CHECK_NEAR(base - top_b, 130 / 1.05, 0.02); /* the taller fills the frame */
	CHECK_NEAR((base - top_a) / (base - top_b), 0.5, 0.02);
	CHECK_CONTAINS(s, ">-4</text>");
	CHECK_CONTAINS(s, ">2</text>");
	CHECK_CONTAINS(s, ">theta[1]</text>");
	sbi_free(s);
	sbi_mat_free(a);
	sbi_mat_free(b);
}

TEST(curve_ranks_trace_predictive)
{
	double x[3] = { 0, 0.5, 1 }, y[3] = { 0, 0.6, 1 }, lo[3] = { 0, 0.45, 1 }, hi[3] = { 0, 0.55, 1 };
	sbi_plot_series sr[1] = { { .x = x, .y = y, .lo = lo, .hi = hi, .n = 3, .name = "NPE" } };
	sbi_plot_curve_opts co = { .diagonal = 1, .xmin = 0, .xmax = 1, .ymin = 0, .ymax = 1, .title = "coverage" };
	char *s = NULL;
	CHECK(sbi_plot_curve(sr, 1, &co, &s, NULL) == SBI_OK);
	CHECK(balanced(s));
	CHECK_CONTAINS(s, "stroke-dasharray");
	CHECK_CONTAINS(s, ">0.5</text>");
	CHECK(count(s, "Z\" fill=") == 1);
	sbi_free(s);

	sbi_mat *r = sbi_mat_alloc(100, 2);
	for (size_t i = 0; i < 200; i++)
		r->data[i] = (double)(i % 11);
	CHECK(sbi_plot_ranks(r, 10, 0, NULL, &s, NULL) == SBI_OK);
	CHECK(count(s, "<rect") == 1 + 2 * (11 + 1 + 1)); /* background; per panel: bars, band, frame */
	sbi_free(s);
	sbi_err err = { 0 };
	CHECK(sbi_plot_ranks(r, 0, 0, NULL, &s, &err) == SBI_EINVAL);
	CHECK_CONTAINS(err.msg, "max_rank");
	sbi_mat_free(r);

	sbi_mat *c1 = normals(3000, 2, 0, 1, 5), *c2 = normals(3000, 2, 1, 1, 6);
	const sbi_mat *ch[2] = { c1, c2 };
	CHECK(sbi_plot_trace(ch, 2, NULL, &s, NULL) == SBI_OK);
	CHECK(balanced(s));
	sbi_free(s);

	sbi_mat *pred = normals(4000, 10, 2, 1, 7);
	double obs[10] = { 2, 2, 2, 2, 2, 2, 2, 2, 2, 2 };
	CHECK(sbi_plot_predictive(obs, pred, NULL, &s, NULL) == SBI_OK);
	CHECK(count(s, "<circle") == 10);
	CHECK(count(s, "Z\" fill=") == 2);
	sbi_free(s);
	sbi_mat_free(pred);
	sbi_mat_free(c1);
	sbi_mat_free(c2);
}

TEST(bad_input_is_named)
{
	sbi_mat *a = normals(10, 2, 0, 1, 1), *b = normals(10, 3, 0, 1, 1);
	const sbi_mat *post[2] = { a, b };
	char *s = NULL;
	sbi_err err = { 0 };
	CHECK(sbi_plot_corner(post, 2, NULL, &s, &err) == SBI_EINVAL);
	CHECK_CONTAINS(err.msg, "posterior 2 has 3 parameters");
	CHECK(s == NULL);
	CHECK(sbi_plot_corner(post, 0, NULL, &s, &err) == SBI_EINVAL);
	sbi_mat_free(a);
	sbi_mat_free(b);
}

/* Constant columns and non-finite values still draw a frame. */
TEST(degenerate_data)
{
	sbi_mat *a = sbi_mat_alloc(50, 2);
	for (size_t i = 0; i < 100; i++)
		a->data[i] = i % 7 == 0 ? NAN : 1.5;
	const sbi_mat *post[1] = { a };
	char *s = NULL;
	CHECK(sbi_plot_corner(post, 1, NULL, &s, NULL) == SBI_OK);
	CHECK(s && balanced(s) && strstr(s, "nan") == NULL);
	sbi_free(s);
	/* A range that overflows (-1e308 .. 1e308) still gives a finite frame. */
	for (size_t i = 0; i < 100; i++)
		a->data[i] = i % 2 ? 1e308 : -1e308;
	CHECK(sbi_plot_corner(post, 1, NULL, &s, NULL) == SBI_OK);
	CHECK(s && balanced(s) && strstr(s, "nan") == NULL && strstr(s, "inf") == NULL);
	sbi_free(s);
	double y[3] = { -1e308, 0, 1e308 };
	sbi_plot_series sr = { .y = y, .n = 3 };
	CHECK(sbi_plot_curve(&sr, 1, NULL, &s, NULL) == SBI_OK);
	CHECK(s && strstr(s, "nan") == NULL);
	sbi_free(s);
	sbi_mat_free(a);
}

TEST(allocation_failures_do_not_leak)
{
	sbi_mat *a = normals(500, 3, 0, 1, 1);
	const sbi_mat *post[1] = { a };
	long live = sbi_test_live_blocks();
	int failed = 0;
	for (long k = 0; k < 40; k++) {
		char *s = NULL;
		sbi_test_fail_alloc_after(k);
		int rc = sbi_plot_corner(post, 1, NULL, &s, NULL);
		sbi_test_fail_alloc_after(-1);
		CHECK(rc == SBI_OK || (rc == SBI_ENOMEM && s == NULL));
		failed += rc != SBI_OK;
		sbi_free(s);
		sbi_mat *pred = a;
		sbi_test_fail_alloc_after(k);
		rc = sbi_plot_predictive(NULL, pred, NULL, &s, NULL);
		sbi_test_fail_alloc_after(-1);
		CHECK(rc == SBI_OK || (rc == SBI_ENOMEM && s == NULL));
		sbi_free(s);
	}
	CHECK(failed > 3);
	CHECK(sbi_test_live_blocks() == live);
	sbi_mat_free(a);
}
