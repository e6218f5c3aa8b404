/* Tests of the classifier two-sample test (engine/nn/c2st.c): its folds
 * against scikit-learn's KFold, its accuracy against known answers,
 * determinism, thread independence and bad input.
 *
 * Known answers. Two independent samples of one distribution cannot be
 * told apart: the accuracy is 0.5 up to the noise of 2n test predictions
 * (sd sqrt(0.25 / 2n) = 0.011 for n = 1000 per set) and an overfitted
 * network's small bias below 0.5; the test allows 0.05. For N(0, I) against
 * N((delta, 0), I) in 2-D the Bayes classifier (the half-plane x1 >
 * delta / 2) is right with probability Phi(delta / 2): 0.6915 for delta = 1
 * and 0.8413 for delta = 2. The network cannot beat it beyond the
 * sampling noise of the 2n test points (sd 0.011 at 0.69, 0.0082 at 0.84
 * for n = 1000), and it loses a little to its learned, not exact,
 * boundary: the test allows +0.03 and -0.04 (about 3 sd up, 3-4 sd down).
 * A network that does not learn (no training, a wrong gradient sign)
 * stays near 0.5 and misses the shifted checks; one whose test rows leak
 * into training memorizes and drifts from 0.5 on the identical sets.
 *
 * The folds are compared with scikit-learn's KFold(k, shuffle=True,
 * random_state=seed) outputs printed by numpy 1.24 / scikit-learn 1.2.1,
 * which checks the MT19937 stream, its seeding and numpy's shuffle. The
 * agreement of whole accuracies with the reference script is a CLI test
 * (t0190, it needs scikit-learn). */
#include <math.h>
#include <stdint.h>

#include <gsl/gsl_cdf.h>
#include <gsl/gsl_randist.h>

#include "check.h"
#include "sbi/c2st.h"
#include "sbi/rng.h"

/* n x d standard normals from stream (seed, 0, idx), shifted by delta in
 * the first column. Caller frees with sbi_mat_free. */
static sbi_mat *
normals(size_t n, size_t d, double delta, uint64_t seed, uint64_t idx)
{
	sbi_mat *m = sbi_mat_alloc(n, d);
	gsl_rng *r = sbi_rng_alloc();
	sbi_rng_set_stream(r, seed, 0, idx);
	for (size_t i = 0; i < n * d; i++)
		m->data[i] = gsl_ran_gaussian_ziggurat(r, 1.0) + (i % d == 0 ? delta : 0.0);
	gsl_rng_free(r);
	return m;
}

TEST(folds_match_scikit_learn)
{
	size_t f[1000];
	sbi_err err = {0};
	/* KFold(5, shuffle=True, random_state=7) on 12 rows. */
	static const size_t k7[12] = {1, 1, 0, 3, 4, 1, 3, 0, 2, 4, 0, 2};
	CHECK(sbi_c2st_kfold(12, 5, 7, f, &err) == SBI_OK);
	for (int i = 0; i < 12; i++)
		CHECK(f[i] == k7[i]);
	/* KFold(5, shuffle=True, random_state=1) on 1000 rows: the first 20
	 * and the last 5 (the stream past its first 624 words). */
	static const size_t k1[20] = {1, 3, 0, 0, 2, 2, 0, 4, 0, 2, 4, 2, 1, 0, 1, 4, 1, 0, 2, 1};
	static const size_t k1_end[5] = {0, 1, 0, 3, 3};
	CHECK(sbi_c2st_kfold(1000, 5, 1, f, &err) == SBI_OK);
	for (int i = 0; i < 20; i++)
		CHECK(f[i] == k1[i]);
	for (int i = 0; i < 5; i++)
		CHECK(f[995 + i] == k1_end[i]);
	size_t count[5] = {0};
	for (int i = 0; i < 1000; i++)
		count[f[i]]++;
	for (int i = 0; i < 5; i++)
		CHECK(count[i] == 200);
	/* KFold(4, shuffle=True, random_state=4000000000) on 103 rows: a seed
	 * above 2^31, uneven folds. */
	static const size_t k4[20] = {1, 0, 0, 3, 2, 3, 2, 1, 0, 0, 0, 3, 0, 2, 2, 1, 0, 3, 0, 2};
	CHECK(sbi_c2st_kfold(103, 4, 4000000000u, f, &err) == SBI_OK);
	for (int i = 0; i < 20; i++)
		CHECK(f[i] == k4[i]);
	CHECK(sbi_c2st_kfold(3, 4, 1, f, &err) == SBI_EINVAL);
	CHECK(sbi_c2st_kfold(3, 1, 1, f, &err) == SBI_EINVAL);
}

/* The accuracy of n normals against n normals shifted by delta. */
static double
c2st_normals(size_t n, double delta, uint64_t seed, const sbi_c2st_opts *o, sbi_c2st_fold *folds)
{
	sbi_mat *a = normals(n, 2, 0.0, seed, 0), *b = normals(n, 2, delta, seed, 1);
	double acc = -1.0;
	sbi_err err = {0};
	CHECK(sbi_c2st(a, b, o, &acc, folds, &err) == SBI_OK);
	sbi_mat_free(a);
	sbi_mat_free(b);
	return acc;
}

TEST(same_distribution_is_one_half)
{
	sbi_c2st_opts o;
	sbi_c2st_defaults(&o);
	for (uint64_t seed = 1; seed <= 3; seed++) {
		double acc = c2st_normals(1000, 0.0, seed, &o, NULL);
		printf("c2st: same distribution, seed %d: %.4f\n", (int)seed, acc);
		CHECK_NEAR(acc, 0.5, 0.05);
	}
}

TEST(shifted_normals_reach_the_bayes_accuracy)
{
	sbi_c2st_opts o;
	sbi_c2st_defaults(&o);
	const double deltas[2] = {1.0, 2.0};
	for (int i = 0; i < 2; i++) {
		double bayes = gsl_cdf_ugaussian_P(deltas[i] / 2.0);
		sbi_c2st_fold folds[5];
		double acc = c2st_normals(1000, deltas[i], 7, &o, folds);
		printf("c2st: shift %g: %.4f (Bayes %.4f)\n", deltas[i], acc, bayes);
		CHECK(acc <= bayes + 0.03);
		CHECK(acc >= bayes - 0.04);
		double mean = 0.0;
		for (int f = 0; f < 5; f++) {
			CHECK(folds[f].ntest == 400);
			CHECK(folds[f].epochs >= 11 && folds[f].epochs <= o.max_iter);
			mean += folds[f].accuracy / 5.0;
		}
		CHECK_NEAR(acc, mean, 1e-12);
	}
}

TEST(deterministic_and_independent_of_threads)
{
	sbi_c2st_opts o;
	sbi_c2st_defaults(&o);
	sbi_c2st_fold f1[5], f3[5];
	double a1 = c2st_normals(300, 1.0, 11, &o, f1);
	o.threads = 3;
	double a3 = c2st_normals(300, 1.0, 11, &o, f3);
	CHECK(a1 == a3);
	for (int f = 0; f < 5; f++)
		CHECK(f1[f].accuracy == f3[f].accuracy && f1[f].epochs == f3[f].epochs);
	o.threads = 1;
	o.seed = 2;
	double a2 = c2st_normals(300, 1.0, 11, &o, f3);
	int differ = a2 != a1;
	for (int f = 0; f < 5; f++)
		differ |= f1[f].epochs != f3[f].epochs;
	CHECK(differ);
	/* max_iter caps the epochs; 3 folds give 3 records. */
	o.max_iter = 3;
	o.folds = 3;
	c2st_normals(300, 1.0, 11, &o, f3);
	for (int f = 0; f < 3; f++)
		CHECK(f3[f].epochs == 3 && f3[f].ntest == 200);
}

TEST(bad_input)
{
	sbi_c2st_opts o;
	sbi_c2st_defaults(&o);
	sbi_mat *a = normals(10, 2, 0.0, 1, 0), *b = normals(10, 3, 0.0, 1, 1), *c = normals(10, 2, 0.0, 1, 2);
	double acc;
	sbi_err err = {0};
	CHECK(sbi_c2st(a, b, &o, &acc, NULL, &err) == SBI_EINVAL);
	CHECK_CONTAINS(err.msg, "same number of columns");
	c->data[7] = NAN;
	CHECK(sbi_c2st(a, c, &o, &acc, NULL, &err) == SBI_EINVAL);
	CHECK_CONTAINS(err.msg, "b has a non-finite value in row 4");
	c->data[7] = 0.0;
	o.folds = 21;
	CHECK(sbi_c2st(a, c, &o, &acc, NULL, &err) == SBI_EINVAL);
	CHECK_CONTAINS(err.msg, "folds");
	o.folds = 5;
	o.max_iter = 0;
	CHECK(sbi_c2st(a, c, &o, &acc, NULL, &err) == SBI_EINVAL);
	CHECK_CONTAINS(err.msg, "max_iter");
	sbi_mat_free(a);
	sbi_mat_free(b);
	sbi_mat_free(c);
}
