/* The training loop (see train.h). */

/* Adam's update runs over every weight each step (12% of a training run
 * in a profile); -O3 vectorizes it (the project builds at -O2), and only
 * without errno from sqrtf (-fno-math-errno, engine/meson.build). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("O3", "no-trapping-math")
#endif

#include <gsl/gsl_randist.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "sbi/alloc.h"
#include "sbi/progress.h"
#include "sbi/rng.h"
#include "sbi/train.h"

void
sbi_train_report_free(sbi_train_report *rep)
{
	sbi_free(rep->train_loss);
	sbi_free(rep->val_loss);
	rep->train_loss = rep->val_loss = NULL;
}

static void
zero_grads(const sbi_trainable *m)
{
	for (size_t i = 0; i < m->nparams; i++)
		memset(m->params[i]->g, 0, m->params[i]->rows * m->params[i]->cols * sizeof(float));
}

/* Sum of squares of g[0..n) in double, in 8 interleaved partial sums: one
 * serial sum was a dependency chain the compiler may not reorder. */
static SBI_AD_VECTOR double
sum_squares(const float *restrict g, size_t n)
{
	double acc[8] = { 0 };
	size_t e = 0;
	for (; e + 8 <= n; e += 8)
		for (size_t j = 0; j < 8; j++)
			acc[j] += (double)g[e + j] * g[e + j];
	for (; e < n; e++)
		acc[0] += (double)g[e] * g[e];
	return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

/* Scales all gradients so their joint L2 norm is at most clip. */
static void
clip_grads(const sbi_trainable *m, double clip)
{
	double ss = 0;
	for (size_t i = 0; i < m->nparams; i++)
		ss += sum_squares(m->params[i]->g, m->params[i]->rows * m->params[i]->cols);
	double norm = sqrt(ss);
	if (clip <= 0 || norm <= clip)
		return;
	float s = (float)(clip / (norm + 1e-6));
	for (size_t i = 0; i < m->nparams; i++) {
		sbi_param *p = m->params[i];
		for (size_t e = 0; e < p->rows * p->cols; e++)
			p->g[e] *= s;
	}
}

/* One parameter's Adam update with step size a and epsilon e2 (bias
 * corrections folded in); masked weights stay exactly zero. */
static SBI_AD_VECTOR void
adam_update(float *restrict w, float *restrict mm, float *restrict vv, const float *restrict gg,
    const float *restrict mask, size_t n, float a, float e2)
{
	const float b1 = 0.9f, b2 = 0.999f;
	for (size_t e = 0; e < n; e++) {
		float g = gg[e];
		mm[e] = b1 * mm[e] + (1 - b1) * g;
		vv[e] = b2 * vv[e] + (1 - b2) * g * g;
		w[e] -= a * mm[e] / (sqrtf(vv[e]) + e2);
	}
	if (mask)
		for (size_t e = 0; e < n; e++)
			w[e] *= mask[e];
}

/* Adam (Kingma and Ba 2015), beta1 0.9, beta2 0.999, eps 1e-8. */
static void
adam_step(const sbi_trainable *m, double lr, size_t step)
{
	const float b1 = 0.9f, b2 = 0.999f, eps = 1e-8f;
	float c1 = 1.0f - powf(b1, (float)step), c2 = 1.0f - powf(b2, (float)step);
	float a = (float)lr * sqrtf(c2) / c1, e2 = eps * sqrtf(c2);
	for (size_t i = 0; i < m->nparams; i++) {
		sbi_param *p = m->params[i];
		adam_update(p->w, p->m, p->v, p->g, p->mask, p->rows * p->cols, a, e2);
	}
}

/* Mean loss over rows idx[0..n) in batches, without gradients. */
static double
eval_loss(const sbi_trainable *m, sbi_tape *t, const size_t *idx, size_t n, size_t batch, int *oom)
{
	double total = 0;
	for (size_t s = 0; s < n; s += batch) {
		size_t b = n - s < batch ? n - s : batch;
		sbi_tape_reset(t);
		sbi_var l = m->loss(m->ud, t, idx + s, b);
		if (sbi_tape_failed(t) || l < 0) {
			*oom = 1;
			return NAN;
		}
		total += (double)sbi_ad_value(t, l)[0] * (double)b;
	}
	return total / (double)(n ? n : 1);
}

/* Copies all weights into / out of a flat snapshot. */
static void
snapshot(const sbi_trainable *m, float *buf, int restore)
{
	for (size_t i = 0; i < m->nparams; i++) {
		sbi_param *p = m->params[i];
		size_t n = p->rows * p->cols;
		if (restore)
			memcpy(p->w, buf, n * sizeof(float));
		else
			memcpy(buf, p->w, n * sizeof(float));
		buf += n;
	}
}

typedef struct loop {
	const sbi_trainable *m;
	const sbi_train_opts *o;
	sbi_tape *t;
	size_t *order, ntrain, nval;
	gsl_rng *r;
	float *best;
	size_t step;
} loop;

static double
train_epoch(loop *L, int *oom)
{
	const sbi_trainable *m = L->m;
	size_t B = L->o->batch;
	gsl_ran_shuffle(L->r, L->order, L->ntrain, sizeof *L->order);
	double total = 0;
	for (size_t s = 0; s < L->ntrain; s += B) {
		size_t b = L->ntrain - s < B ? L->ntrain - s : B;
		sbi_tape_reset(L->t);
		zero_grads(m);
		sbi_var loss = m->loss(m->ud, L->t, L->order + s, b);
		if (sbi_tape_failed(L->t) || loss < 0) {
			*oom = 1;
			return NAN;
		}
		total += (double)sbi_ad_value(L->t, loss)[0] * (double)b;
		sbi_ad_backward(L->t, loss);
		clip_grads(m, L->o->clip);
		adam_step(m, L->o->lr, ++L->step);
	}
	return total / (double)L->ntrain;
}

static int
run_epochs(loop *L, sbi_train_report *rep, sbi_err *err)
{
	double best = INFINITY, t0 = sbi_now(), last_log = t0;
	size_t since = 0, epoch = 0;
	int oom = 0;
	/* Stop after `patience` epochs without improvement (at least one). */
	size_t patience = L->o->patience ? L->o->patience : 1;
	for (; epoch < L->o->max_epochs && since < patience; epoch++) {
		double tl = train_epoch(L, &oom);
		double vl = oom ? NAN : eval_loss(L->m, L->t, L->order + L->ntrain, L->nval, L->o->batch, &oom);
		if (oom)
			return sbi_err_set(err, SBI_ENOMEM, "%s: out of memory during training", L->o->label);
		if (!isfinite(tl) || !isfinite(vl))
			return sbi_err_set(err, SBI_EINVAL, "%s: the loss became %g at epoch %zu (try a smaller "
			    "learning rate)", L->o->label, isfinite(tl) ? vl : tl, epoch + 1);
		rep->train_loss[epoch] = tl;
		rep->val_loss[epoch] = vl;
		if (vl < best) {
			best = vl;
			since = 0;
			rep->best_epoch = epoch + 1;
			snapshot(L->m, L->best, 0);
		} else
			since++;
		double now = sbi_now();
		if (!L->o->quiet && now - last_log > 5.0) {
			fprintf(stderr, "%s: epoch %zu, train loss %.4f, validation loss %.4f (best %.4f at %zu)\n",
			    L->o->label, epoch + 1, tl, vl, best, rep->best_epoch);
			last_log = now;
		}
	}
	snapshot(L->m, L->best, 1);
	rep->epochs = epoch;
	rep->best_val_loss = best;
	rep->steps = L->step;
	rep->seconds = sbi_now() - t0;
	return SBI_OK;
}

/* The nested split (train.h): the training rows in order, then the nval
 * held-out rows in a seeded order (so a validation batch mixes the rounds
 * as a training batch does). Row i is held out when floor((i + 1) f) >
 * floor(i f): floor(n f) of the first n rows for every n, always the same
 * ones. A sequential round's warm start thus never selects its weights on
 * rows the previous round trained on. */
static void
nested_split(size_t *order, size_t n, double f, size_t nval, gsl_rng *r)
{
	size_t a = 0, b = n - nval;
	for (size_t i = 0; i < n; i++) {
		int held = floor((double)(i + 1) * f) > floor((double)i * f);
		if (held && b < n)
			order[b++] = i;
		else
			order[a++] = i;
	}
	gsl_ran_shuffle(r, order + (n - nval), nval, sizeof *order);
}

int
sbi_train(const sbi_trainable *m, size_t ndata, const sbi_train_opts *o, sbi_train_report *rep,
    sbi_err *err)
{
	memset(rep, 0, sizeof *rep);
	size_t nval = (size_t)floor(o->val_fraction * (double)ndata);
	if (nval < 1 || ndata - nval < 1 || o->batch < 1)
		return sbi_err_set(err, SBI_EINVAL, "%s: need at least 2 rows and a validation fraction that "
		    "leaves rows on both sides (%zu rows, fraction %g)", o->label, ndata, o->val_fraction);
	size_t nw = 0;
	for (size_t i = 0; i < m->nparams; i++)
		nw += m->params[i]->rows * m->params[i]->cols;
	loop L = { .m = m, .o = o, .ntrain = ndata - nval, .nval = nval };
	L.t = sbi_tape_alloc();
	L.order = sbi_malloc(ndata * sizeof *L.order);
	L.best = sbi_malloc((nw ? nw : 1) * sizeof(float));
	L.r = sbi_rng_alloc();
	rep->train_loss = sbi_calloc(o->max_epochs + 1, sizeof(double));
	rep->val_loss = sbi_calloc(o->max_epochs + 1, sizeof(double));
	int rc;
	if (!L.t || !L.order || !L.best || !L.r || !rep->train_loss || !rep->val_loss)
		rc = sbi_err_set(err, SBI_ENOMEM, "out of memory for training");
	else {
		/* One fixed split: a seeded permutation, the last rows held out. */
		sbi_rng_set_stream(L.r, o->seed, SBI_STREAM_METHOD, 0x747261696e /* "train" */);
		if (o->nested_split)
			nested_split(L.order, ndata, o->val_fraction, nval, L.r);
		else {
			for (size_t i = 0; i < ndata; i++)
				L.order[i] = i;
			gsl_ran_shuffle(L.r, L.order, ndata, sizeof *L.order);
		}
		rep->ntrain = L.ntrain;
		rep->nval = nval;
		for (size_t i = 0; i < m->nparams; i++)
			memset(m->params[i]->m, 0, m->params[i]->rows * m->params[i]->cols * sizeof(float)),
			memset(m->params[i]->v, 0, m->params[i]->rows * m->params[i]->cols * sizeof(float));
		rc = run_epochs(&L, rep, err);
	}
	sbi_tape_free(L.t);
	sbi_free(L.order);
	sbi_free(L.best);
	if (L.r)
		gsl_rng_free(L.r);
	if (rc != SBI_OK)
		sbi_train_report_free(rep);
	return rc;
}
