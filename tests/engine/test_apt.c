/* Sequential neural posterior estimation, the engine part: the atomic
 * (APT / SNPE-C) loss of sbi_fit_flow_ex recovers the posterior under the
 * prior from pairs whose thetas came from another proposal, where plain
 * maximum likelihood gives the proposal's posterior; warm starts continue
 * from a model's weights and standardization and refuse another
 * configuration. */
#include <gsl/gsl_randist.h>
#include <math.h>
#include <stdlib.h>

#include "check.h"
#include "sbi/alloc.h"
#include "sbi/fit.h"
#include "sbi/rng.h"
#include "sbi/train.h"

/* The model: theta ~ N(0, 1) (the prior), x | theta ~ N(theta, 0.5^2); the
 * training thetas come from the proposal N(1, 0.4^2). At x_o the posterior
 * under a N(m, s^2) prior is normal with precision 1/s^2 + 1/0.25 and mean
 * (m/s^2 + x_o/0.25) / precision:
 *   prior N(0, 1):        precision 5,     mean 0.8, sd sqrt(1/5)     = 0.4472;
 *   proposal N(1, 0.16):  precision 10.25, mean 1.0, sd sqrt(1/10.25) = 0.3123. */
#define X_O 1.0
#define POST_MEAN 0.8
#define POST_SD 0.4472135954999579
#define PROP_MEAN 1.0
#define PROP_SD 0.31234752377721214
#define N_PAIRS 3000

static void
simulate(uint64_t seed, double *theta, double *x)
{
	gsl_rng *r = sbi_rng_alloc();
	sbi_rng_set_stream(r, seed, 9, 0);
	for (size_t i = 0; i < N_PAIRS; i++) {
		theta[i] = 1.0 + gsl_ran_gaussian(r, 0.4);
		x[i] = theta[i] + gsl_ran_gaussian(r, 0.5);
	}
	gsl_rng_free(r);
}

static sbi_flow_config
small_maf(uint64_t seed)
{
	return (sbi_flow_config){ .kind = SBI_FLOW_MAF, .dim = 1, .context = 1, .transforms = 2, .hidden = 16,
		.layers = 1, .bins = 10, .bound = 3.0, .act = SBI_ACT_TANH, .seed = seed };
}

static sbi_train_opts
opts(uint64_t seed, size_t max_epochs)
{
	return (sbi_train_opts){ .batch = 100, .max_epochs = max_epochs, .patience = 10, .lr = 2e-3,
		.val_fraction = 0.1, .clip = 5.0, .seed = seed, .quiet = 1, .label = "apt" };
}

/* The mean and sd of q(theta | X_O) by quadrature on a fine grid. */
static void
posterior_moments(sbi_flow *f, double *mean, double *sd)
{
	enum { G = 2001 };
	const double lo = -2.5, hi = 4.5, h = (hi - lo) / (G - 1), c = X_O;
	double *th = malloc(G * sizeof *th), *lp = malloc(G * sizeof *lp);
	for (size_t i = 0; i < G; i++)
		th[i] = lo + h * (double)i;
	sbi_tape *t = sbi_tape_alloc();
	sbi_err err = { 0 };
	CHECK(sbi_flow_log_prob(f, t, th, 0, &c, 1, G, lp, &err) == SBI_OK);
	double z = 0, m = 0, v = 0;
	for (size_t i = 0; i < G; i++)
		z += exp(lp[i]) * h, m += th[i] * exp(lp[i]) * h;
	m /= z;
	for (size_t i = 0; i < G; i++)
		v += (th[i] - m) * (th[i] - m) * exp(lp[i]) * h;
	*mean = m, *sd = sqrt(v / z);
	sbi_tape_free(t);
	free(th), free(lp);
}

/* Fits q(theta | x) to the pairs with atoms (0: maximum likelihood). */
static sbi_flow *
fit(const double *theta, const double *x, size_t atoms, uint64_t seed, sbi_train_report *rep)
{
	sbi_prior *prior = sbi_prior_normal_alloc(1, (double[]){ 0 }, (double[]){ 1 }, NULL);
	double *lp = malloc(N_PAIRS * sizeof *lp);
	sbi_fit_log_prior(prior, theta, N_PAIRS, lp);
	sbi_flow_config cfg = small_maf(seed);
	sbi_train_opts o = opts(seed, 300);
	sbi_flow_fit_opts fo = { .atoms = atoms, .log_prior = lp };
	sbi_err err = { 0 };
	sbi_flow *f = NULL;
	CHECK(sbi_fit_flow_ex(&cfg, &fo, &o, theta, x, N_PAIRS, &f, rep, &err) == SBI_OK);
	sbi_prior_free(prior);
	free(lp);
	return f;
}

TEST(apt_recovers_the_posterior_under_the_prior)
{
	double *theta = malloc(N_PAIRS * sizeof *theta), *x = malloc(N_PAIRS * sizeof *x);
	const char *env = getenv("APT_SEED");
	uint64_t seed = env ? (uint64_t)atoi(env) : 1;
	simulate(seed, theta, x);
	sbi_train_report ra, rm;
	sbi_flow *apt = fit(theta, x, 10, seed, &ra), *mle = fit(theta, x, 0, seed, &rm);
	double am, as, mm, ms;
	posterior_moments(apt, &am, &as);
	posterior_moments(mle, &mm, &ms);
	fprintf(stderr, "  APT: mean %.4f sd %.4f (%zu epochs); MLE: mean %.4f sd %.4f (%zu epochs); "
	    "posterior %.4f %.4f, proposal posterior %.4f %.4f\n", am, as, ra.epochs, mm, ms, rm.epochs,
	    POST_MEAN, POST_SD, PROP_MEAN, PROP_SD);
	CHECK_NEAR(am, POST_MEAN, 0.06);
	CHECK_NEAR(as, POST_SD, 0.05);
	/* Ignoring the atoms gives the proposal's posterior: measurably off. */
	CHECK(fabs(mm - POST_MEAN) > 0.12 && fabs(ms - POST_SD) > 0.08);
	CHECK_NEAR(mm, PROP_MEAN, 0.06);
	CHECK_NEAR(ms, PROP_SD, 0.05);
	sbi_train_report_free(&ra), sbi_train_report_free(&rm);
	sbi_flow_free(apt), sbi_flow_free(mle);
	free(theta), free(x);
}

/* A warm start's first epoch is where the initial model ended: with 3
 * steps an epoch (batch 1000) a fresh flow's first validation loss is
 * still about 0.66, the warm start's within 0.02 of the initial model's
 * best, 0.30. */
TEST(warm_start_continues_from_the_model)
{
	double *theta = malloc(N_PAIRS * sizeof *theta), *x = malloc(N_PAIRS * sizeof *x);
	simulate(2, theta, x);
	sbi_flow_config cfg = small_maf(3);
	sbi_train_opts o = opts(3, 300);
	sbi_err err = { 0 };
	sbi_train_report ra, rb, rc;
	sbi_flow *a, *b, *c;
	CHECK(sbi_fit_flow(&cfg, &o, theta, x, N_PAIRS, &a, &ra, &err) == SBI_OK);
	sbi_flow_fit_opts fo = { .init = a };
	o.batch = 1000, o.lr = 5e-4;
	CHECK(sbi_fit_flow_ex(&cfg, &fo, &o, theta, x, N_PAIRS, &b, &rb, &err) == SBI_OK);
	o.max_epochs = 1;
	CHECK(sbi_fit_flow(&cfg, &o, theta, x, N_PAIRS, &c, &rc, &err) == SBI_OK);
	fprintf(stderr, "  initial: best %.4f; warm start: epoch 1 %.4f; fresh: epoch 1 %.4f\n", ra.best_val_loss,
	    rb.val_loss[0], rc.val_loss[0]);
	CHECK_NEAR(rb.val_loss[0], ra.best_val_loss, 0.02);
	CHECK(rc.val_loss[0] > ra.best_val_loss + 0.2);
	sbi_train_report_free(&ra), sbi_train_report_free(&rb), sbi_train_report_free(&rc);
	sbi_flow_free(b), sbi_flow_free(c);

	/* The standardization is init's: on data shifted by 3 (whose own z-scoring
	 * would differ), a step of lr 1e-12 leaves the model's densities as they were. */
	for (size_t i = 0; i < N_PAIRS; i++)
		theta[i] += 3, x[i] += 3;
	o.lr = 1e-12;
	CHECK(sbi_fit_flow_ex(&cfg, &fo, &o, theta, x, N_PAIRS, &b, &rb, &err) == SBI_OK);
	double ma, sa, mb, sb;
	posterior_moments(a, &ma, &sa);
	posterior_moments(b, &mb, &sb);
	CHECK_NEAR(mb, ma, 1e-5);
	CHECK_NEAR(sb, sa, 1e-5);
	sbi_train_report_free(&rb);
	sbi_flow_free(a), sbi_flow_free(b);
	free(theta), free(x);
}

/* Fits that must fail, with what the message says. */
static void
fit_fails(const sbi_flow_config *cfg, const sbi_flow_fit_opts *fo, const double *y, const double *c, size_t n,
    const char *msg)
{
	sbi_train_opts o = opts(1, 2);
	sbi_err err = { 0 };
	sbi_train_report rep;
	sbi_flow *f = (sbi_flow *)1;
	CHECK(sbi_fit_flow_ex(cfg, fo, &o, y, c, n, &f, &rep, &err) == SBI_EINVAL);
	CHECK(f == NULL);
	CHECK_CONTAINS(err.msg, msg);
}

TEST(atoms_and_init_errors)
{
	double y[20], c[20], lp[20];
	for (size_t i = 0; i < 20; i++)
		y[i] = (double)i / 20, c[i] = (double)i / 10;
	sbi_prior *prior = sbi_prior_uniform_alloc(1, (double[]){ 0 }, (double[]){ 0.9 }, NULL);
	sbi_fit_log_prior(prior, y, 20, lp);
	CHECK_NEAR(lp[0], -log(0.9), 1e-12);
	CHECK(lp[19] == -INFINITY);
	sbi_flow_config cfg = small_maf(1), uncond = cfg;
	uncond.context = 0;
	fit_fails(&cfg, &(sbi_flow_fit_opts){ .atoms = 1, .log_prior = lp }, y, c, 20, "atoms = 1: expected at least 2");
	fit_fails(&uncond, &(sbi_flow_fit_opts){ .atoms = 5, .log_prior = lp }, y, NULL, 20, "needs a context");
	fit_fails(&cfg, &(sbi_flow_fit_opts){ .atoms = 5 }, y, c, 20, "log densities of the rows are missing");
	fit_fails(&cfg, &(sbi_flow_fit_opts){ .atoms = 5, .log_prior = lp }, y, c, 20,
	    "atoms: row 20 of y has log prior density -inf (outside the prior's support?)");
	sbi_flow_fit_opts ok = { .atoms = 5, .log_prior = lp };
	sbi_train_opts o = opts(1, 2);
	sbi_err err = { 0 };
	sbi_train_report rep;
	sbi_flow *f;
	CHECK(sbi_fit_flow_ex(&cfg, &ok, &o, y, c, 18, &f, &rep, &err) == SBI_OK);
	sbi_train_report_free(&rep);

	sbi_flow_config other = cfg;
	other.hidden = 32;
	fit_fails(&other, &(sbi_flow_fit_opts){ .init = f }, y, c, 20, "init: the initial model's hidden is 16, the fit's 32");
	other = cfg, other.kind = SBI_FLOW_NSF;
	fit_fails(&other, &(sbi_flow_fit_opts){ .init = f }, y, c, 20, "init: the initial model is a maf, the fit's kind is nsf");
	other = cfg, other.act = SBI_ACT_RELU;
	fit_fails(&other, &(sbi_flow_fit_opts){ .init = f }, y, c, 20, "activation differs");
	fit_fails(&uncond, &(sbi_flow_fit_opts){ .init = f }, y, NULL, 20, "init: the initial model's context (columns) is 1, the fit's 0");
	sbi_flow_free(f);
	sbi_prior_free(prior);
}

/* A classifier's warm start: as a flow's, and another shape is refused. */
TEST(classifier_warm_start)
{
	double *theta = malloc(N_PAIRS * sizeof *theta), *x = malloc(N_PAIRS * sizeof *x);
	simulate(4, theta, x);
	sbi_classifier_config cfg = { .dtheta = 1, .dx = 1, .hidden = 16, .layers = 1, .act = SBI_ACT_TANH, .seed = 2 };
	sbi_train_opts o = opts(2, 300);
	sbi_err err = { 0 };
	sbi_train_report ra, rb, rc;
	sbi_classifier *a, *b, *c;
	CHECK(sbi_fit_classifier(&cfg, 5, &o, theta, x, N_PAIRS, &a, &ra, &err) == SBI_OK);
	o.batch = 1000, o.lr = 5e-4, o.max_epochs = 1;
	CHECK(sbi_fit_classifier_ex(&cfg, 5, a, &o, theta, x, N_PAIRS, &b, &rb, &err) == SBI_OK);
	CHECK(sbi_fit_classifier(&cfg, 5, &o, theta, x, N_PAIRS, &c, &rc, &err) == SBI_OK);
	fprintf(stderr, "  classifier: initial best %.4f; warm start: epoch 1 %.4f; fresh: epoch 1 %.4f\n",
	    ra.best_val_loss, rb.val_loss[0], rc.val_loss[0]);
	CHECK_NEAR(rb.val_loss[0], ra.best_val_loss, 0.02);
	CHECK(rc.val_loss[0] > ra.best_val_loss + 0.1);
	sbi_train_report_free(&rc);
	cfg.layers = 2;
	sbi_classifier *d = (sbi_classifier *)1;
	CHECK(sbi_fit_classifier_ex(&cfg, 5, a, &o, theta, x, N_PAIRS, &d, &rc, &err) == SBI_EINVAL);
	CHECK(d == NULL);
	CHECK_CONTAINS(err.msg, "init: the initial model's layers is 1, the fit's 2");
	sbi_train_report_free(&ra), sbi_train_report_free(&rb);
	sbi_classifier_free(a), sbi_classifier_free(b), sbi_classifier_free(c);
	free(theta), free(x);
}

/* ---- the nested validation split (sbi_train_opts.nested_split) ---- */

/* A trainable whose loss records the rows it is given: with one epoch,
 * the first ntrain rows recorded are the training rows, the rest the
 * validation rows. */
typedef struct rows_seen {
	sbi_param *p;
	size_t *rows, n;
} rows_seen;

static sbi_var
record_rows(void *ud, sbi_tape *t, const size_t *idx, size_t n)
{
	rows_seen *s = ud;
	for (size_t i = 0; i < n; i++)
		s->rows[s->n++] = idx[i];
	return sbi_ad_mean(t, sbi_ad_square(t, sbi_ad_param(t, s->p)));
}

/* held[i] = 1 when row i of n was a validation row of a nested split. */
static void
nested_held(size_t n, double f, uint64_t seed, unsigned char *held, size_t *nval)
{
	sbi_err err = { 0 };
	sbi_param *p = sbi_param_alloc(1, 1);
	CHECK(p != NULL);
	rows_seen s = { p, malloc(2 * n * sizeof(size_t)), 0 };
	sbi_trainable m = { &s.p, 1, record_rows, &s };
	sbi_train_opts o = { .batch = 7, .max_epochs = 1, .patience = 1, .lr = 1e-3, .val_fraction = f, .clip = 5,
		.nested_split = 1, .seed = seed, .quiet = 1, .label = "nested" };
	sbi_train_report rep;
	CHECK(sbi_train(&m, n, &o, &rep, &err) == SBI_OK);
	CHECK(s.n == n);
	*nval = rep.nval;
	for (size_t i = 0; i < n; i++)
		held[i] = 0;
	for (size_t k = rep.ntrain; k < n; k++)
		held[s.rows[k]]++;
	for (size_t k = 0; k < rep.ntrain; k++)
		CHECK(held[s.rows[k]] == 0);
	sbi_train_report_free(&rep);
	sbi_param_free(p);
	free(s.rows);
}

/* floor(n f) rows held out, each once; the split of the first n rows is
 * the split of the first n rows of a longer data set (a later round), so
 * the rows a round trained on are never the next round's validation rows;
 * and it does not depend on the seed (only the validation batches' order
 * does). */
TEST(nested_split_is_stable_as_rounds_append_rows)
{
	const size_t n1 = 1000, n2 = 2500;
	unsigned char *h1 = malloc(n1), *h2 = malloc(n2), *h3 = malloc(n2);
	size_t v1, v2, v3;
	nested_held(n1, 0.1, 5, h1, &v1);
	nested_held(n2, 0.1, 5, h2, &v2);
	nested_held(n2, 0.1, 6, h3, &v3);
	CHECK(v1 == 100 && v2 == 250 && v3 == 250);
	size_t c1 = 0, c2 = 0;
	for (size_t i = 0; i < n2; i++) {
		CHECK(h2[i] <= 1 && h2[i] == h3[i]);
		c2 += h2[i];
		if (i < n1) {
			CHECK(h1[i] == h2[i]);
			c1 += h1[i];
		}
	}
	CHECK(c1 == v1 && c2 == v2);
	free(h1), free(h2), free(h3);
}
