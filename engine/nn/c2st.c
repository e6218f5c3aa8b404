/* The classifier two-sample test: scikit-learn's MLPClassifier and KFold
 * as sbibm runs them (sbi/c2st.h). The network is written out by hand
 * rather than on the ad.c tape: three fixed layers need no tape, and
 * the hand-written passes follow scikit-learn's order of operations
 * (the penalty added before the division by the batch size, Adam's
 * step size with both bias corrections folded in and eps outside the
 * square root), which the agreement with the reference depends on. */
#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <string.h>

#include "sbi/alloc.h"
#include "sbi/c2st.h"

/* ---- numpy's MT19937 (numpy/random/src/mt19937, legacy seeding) ---- */

enum { MT_N = 624, MT_M = 397 };

typedef struct mt {
	uint32_t key[MT_N];
	int pos;
} mt;

static void
mt_seed(mt *m, uint32_t seed)
{
	for (int i = 0; i < MT_N; i++) {
		m->key[i] = seed;
		seed = 1812433253u * (seed ^ (seed >> 30)) + (uint32_t)i + 1u;
	}
	m->pos = MT_N;
}

static uint32_t
mt_mix(uint32_t hi, uint32_t lo, uint32_t far)
{
	uint32_t y = (hi & 0x80000000u) | (lo & 0x7fffffffu);
	return far ^ (y >> 1) ^ ((0u - (y & 1u)) & 0x9908b0dfu);
}

static void
mt_gen(mt *m)
{
	int i;
	for (i = 0; i < MT_N - MT_M; i++)
		m->key[i] = mt_mix(m->key[i], m->key[i + 1], m->key[i + MT_M]);
	for (; i < MT_N - 1; i++)
		m->key[i] = mt_mix(m->key[i], m->key[i + 1], m->key[i + MT_M - MT_N]);
	m->key[MT_N - 1] = mt_mix(m->key[MT_N - 1], m->key[0], m->key[MT_M - 1]);
	m->pos = 0;
}

static uint32_t
mt_next(mt *m)
{
	if (m->pos == MT_N)
		mt_gen(m);
	uint32_t y = m->key[m->pos++];
	y ^= y >> 11;
	y ^= (y << 7) & 0x9d2c5680u;
	y ^= (y << 15) & 0xefc60000u;
	return y ^ (y >> 18);
}

/* RandomState.random_sample: 53 bits from two draws. */
static double
mt_double(mt *m)
{
	uint32_t a = mt_next(m) >> 5, b = mt_next(m) >> 6;
	return ((double)a * 67108864.0 + (double)b) / 9007199254740992.0;
}

/* numpy's random_interval: uniform on 0..max by masked rejection (max
 * below 2^32 here: row counts of a C2ST). */
static size_t
mt_interval(mt *m, size_t max)
{
	uint32_t mask = (uint32_t)max, v;
	mask |= mask >> 1;
	mask |= mask >> 2;
	mask |= mask >> 4;
	mask |= mask >> 8;
	mask |= mask >> 16;
	while ((v = mt_next(m) & mask) > max)
		;
	return v;
}

/* RandomState.shuffle of a 1-d array: Fisher-Yates from the end. */
static void
mt_shuffle(mt *m, size_t *x, size_t n)
{
	for (size_t i = n; i-- > 1;) {
		size_t j = mt_interval(m, i), t = x[i];
		x[i] = x[j];
		x[j] = t;
	}
}

/* ---- folds ---- */

int
sbi_c2st_kfold(size_t n, size_t k, uint32_t seed, size_t *fold, sbi_err *err)
{
	if (k < 2 || k > n)
		return sbi_err_set(err, SBI_EINVAL, "c2st: folds must be between 2 and the %zu rows, got %zu",
				   n, k);
	if (n > UINT32_MAX)
		return sbi_err_set(err, SBI_EINVAL, "c2st: at most %u rows", UINT32_MAX);
	size_t *idx = sbi_malloc(n * sizeof *idx); /* freed below */
	if (!idx)
		return sbi_err_set(err, SBI_ENOMEM, "c2st: out of memory");
	mt m;
	mt_seed(&m, seed);
	for (size_t i = 0; i < n; i++)
		idx[i] = i;
	mt_shuffle(&m, idx, n);
	/* KFold: the first n % k folds hold one row more. */
	size_t at = 0;
	for (size_t f = 0; f < k; f++) {
		size_t size = n / k + (f < n % k);
		for (size_t i = 0; i < size; i++)
			fold[idx[at++]] = f;
	}
	sbi_free(idx);
	return SBI_OK;
}

/* ---- the network ---- */

/* A 3-layer MLP d -> h -> h -> 1 with every array in one allocation:
 * weights w (W0, W1, W2, b0, b1, b2, the parameter list Adam walks), its
 * gradient g and moments am, av, and the batch's activations and deltas. */
typedef struct mlp {
	size_t d, h, np, bs;
	float *w, *g, *am, *av;
	float *W[3], *b[3], *gW[3], *gb[3];
	float *x, *a1, *a2, *out, *d1, *d2, *d3;
	float *mem;
} mlp;

static int
mlp_alloc(mlp *n, size_t d, size_t h, size_t bs)
{
	size_t sizes[3] = {d * h, h * h, h};
	size_t bias[3] = {h, h, 1};
	n->d = d, n->h = h, n->bs = bs;
	n->np = sizes[0] + sizes[1] + sizes[2] + bias[0] + bias[1] + bias[2];
	size_t total = 4 * n->np + bs * (d + 4 * h + 2);
	n->mem = sbi_calloc(total, sizeof(float)); /* freed by mlp_free */
	if (!n->mem)
		return SBI_ENOMEM;
	float *p = n->mem;
	n->w = p, p += n->np;
	n->g = p, p += n->np;
	n->am = p, p += n->np;
	n->av = p, p += n->np;
	size_t off = 0;
	for (int l = 0; l < 3; l++)
		n->W[l] = n->w + off, n->gW[l] = n->g + off, off += sizes[l];
	for (int l = 0; l < 3; l++)
		n->b[l] = n->w + off, n->gb[l] = n->g + off, off += bias[l];
	n->x = p, p += bs * d;
	n->a1 = p, p += bs * h;
	n->a2 = p, p += bs * h;
	n->d1 = p, p += bs * h;
	n->d2 = p, p += bs * h;
	n->out = p, p += bs;
	n->d3 = p;
	return SBI_OK;
}

static void
mlp_free(mlp *n)
{
	sbi_free(n->mem);
	n->mem = NULL;
}

/* scikit-learn's _init_coef for each layer in turn: weights then biases,
 * uniform on +-sqrt(6 / (fan_in + fan_out)), drawn in double and rounded
 * to float32. */
static void
mlp_init(mlp *n, mt *m)
{
	size_t in[3] = {n->d, n->h, n->h}, out[3] = {n->h, n->h, 1};
	for (int l = 0; l < 3; l++) {
		double bound = sqrt(6.0 / (double)(in[l] + out[l]));
		for (size_t i = 0; i < in[l] * out[l]; i++)
			n->W[l][i] = (float)(-bound + 2.0 * bound * mt_double(m));
		for (size_t i = 0; i < out[l]; i++)
			n->b[l][i] = (float)(-bound + 2.0 * bound * mt_double(m));
	}
	memset(n->am, 0, n->np * sizeof(float));
	memset(n->av, 0, n->np * sizeof(float));
}

/* y = x W + b for rows rows, then relu when asked. */
static void
dense(size_t rows, size_t in, size_t outc, const float *x, const float *W, const float *b, float *y,
      int relu)
{
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)outc, (int)in, 1.0f, x,
		    (int)in, W, (int)outc, 0.0f, y, (int)outc);
	for (size_t r = 0; r < rows; r++) {
		float *yr = y + r * outc;
		for (size_t j = 0; j < outc; j++) {
			float v = yr[j] + b[j];
			yr[j] = relu && v < 0.0f ? 0.0f : v;
		}
	}
}

/* The probabilities of class 1 for the rows in n->x into n->out. */
static void
mlp_forward(mlp *n, size_t rows)
{
	dense(rows, n->d, n->h, n->x, n->W[0], n->b[0], n->a1, 1);
	dense(rows, n->h, n->h, n->a1, n->W[1], n->b[1], n->a2, 1);
	dense(rows, n->h, 1, n->a2, n->W[2], n->b[2], n->out, 0);
	for (size_t r = 0; r < rows; r++)
		n->out[r] = 1.0f / (1.0f + expf(-n->out[r]));
}

/* One layer's gradients (scikit-learn's _compute_loss_grad): gW =
 * (x^T delta + alpha W) / rows, gb = the column means of delta. */
static void
layer_grad(size_t rows, size_t in, size_t outc, const float *x, const float *delta, const float *W,
	   float *gW, float *gb)
{
	const float alpha = 1e-4f, inv = (float)rows;
	cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)in, (int)outc, (int)rows, 1.0f, x,
		    (int)in, delta, (int)outc, 0.0f, gW, (int)outc);
	for (size_t i = 0; i < in * outc; i++)
		gW[i] = (gW[i] + alpha * W[i]) / inv;
	memset(gb, 0, outc * sizeof(float));
	for (size_t r = 0; r < rows; r++)
		for (size_t j = 0; j < outc; j++)
			gb[j] += delta[r * outc + j];
	for (size_t j = 0; j < outc; j++)
		gb[j] /= inv;
}

/* delta_prev = (delta W^T) where the layer's relu output was positive. */
static void
back_relu(size_t rows, size_t in, size_t outc, const float *delta, const float *W, const float *a,
	  float *prev)
{
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)in, (int)outc, 1.0f, delta,
		    (int)outc, W, (int)outc, 0.0f, prev, (int)in);
	for (size_t i = 0; i < rows * in; i++)
		if (a[i] == 0.0f)
			prev[i] = 0.0f;
}

/* Forward and backward over the batch in n->x with labels y; returns the
 * batch's loss (binary cross-entropy with probabilities clipped to
 * [eps, 1 - eps] of float32, plus alpha/2 |W|^2 / rows), gradients in n->g. */
static double
mlp_backprop(mlp *n, size_t rows, const float *y)
{
	const float eps = 1.1920929e-07f;
	mlp_forward(n, rows);
	double loss = 0.0;
	for (size_t r = 0; r < rows; r++) {
		float p = n->out[r];
		float c = p < eps ? eps : (p > 1.0f - eps ? 1.0f - eps : p);
		loss -= y[r] > 0.5f ? log((double)c) : log(1.0 - (double)c);
		n->d3[r] = p - y[r];
	}
	loss /= (double)rows;
	double sq = 0.0; /* the weights W0, W1, W2, not the biases */
	for (size_t i = 0; i < (size_t)(n->b[0] - n->w); i++)
		sq += (double)n->w[i] * (double)n->w[i];
	loss += 0.5 * 1e-4 * sq / (double)rows;
	layer_grad(rows, n->h, 1, n->a2, n->d3, n->W[2], n->gW[2], n->gb[2]);
	back_relu(rows, n->h, 1, n->d3, n->W[2], n->a2, n->d2);
	layer_grad(rows, n->h, n->h, n->a1, n->d2, n->W[1], n->gW[1], n->gb[1]);
	back_relu(rows, n->h, n->h, n->d2, n->W[1], n->a1, n->d1);
	layer_grad(rows, n->d, n->h, n->x, n->d1, n->W[0], n->gW[0], n->gb[0]);
	return loss;
}

/* scikit-learn's AdamOptimizer step t (from 1), in its float32 order. */
static void
mlp_adam(mlp *n, size_t t)
{
	const float b1 = 0.9f, b2 = 0.999f, c1 = (float)(1.0 - 0.9), c2 = (float)(1.0 - 0.999);
	const float eps = 1e-8f;
	double lr = 1e-3 * sqrt(1.0 - pow(0.999, (double)t)) / (1.0 - pow(0.9, (double)t));
	const float step = (float)-lr;
	for (size_t i = 0; i < n->np; i++) {
		float g = n->g[i];
		n->am[i] = b1 * n->am[i] + c1 * g;
		n->av[i] = b2 * n->av[i] + c2 * (g * g);
		n->w[i] += step * n->am[i] / (sqrtf(n->av[i]) + eps);
	}
}

/* ---- one fold ---- */

typedef struct fold_job {
	const float *x;      /* all rows, z-scored, row-major (borrowed) */
	const float *y;      /* labels 0/1 (borrowed) */
	const size_t *fold;  /* each row's fold (borrowed) */
	size_t n, d, h, f, max_iter;
	uint32_t seed;
	sbi_c2st_fold res;
	int rc;
} fold_job;

/* Trains on the rows outside fold f (in row order, as KFold yields them)
 * for up to max_iter epochs; stops like scikit-learn with tol 1e-4 and
 * n_iter_no_change 10 on the training loss. */
static size_t
fit(mlp *net, mt *m, const float *x, const float *y, size_t nt, size_t d, size_t max_iter,
    size_t *order, float *yb)
{
	double best = INFINITY;
	size_t stall = 0, t = 0, epoch;
	for (size_t i = 0; i < nt; i++)
		order[i] = i;
	size_t *perm = order + nt; /* sklearn.utils.shuffle: idx = idx[perm] */
	for (epoch = 0; epoch < max_iter;) {
		for (size_t i = 0; i < nt; i++)
			perm[i] = i;
		mt_shuffle(m, perm, nt);
		for (size_t i = 0; i < nt; i++)
			perm[i] = order[perm[i]];
		memcpy(order, perm, nt * sizeof *order);
		double acc = 0.0;
		for (size_t s = 0; s < nt; s += net->bs) {
			size_t rows = nt - s < net->bs ? nt - s : net->bs;
			for (size_t r = 0; r < rows; r++) {
				size_t i = order[s + r];
				memcpy(net->x + r * d, x + i * d, d * sizeof(float));
				yb[r] = y[i];
			}
			acc += mlp_backprop(net, rows, yb) * (double)rows;
			mlp_adam(net, ++t);
		}
		epoch++;
		double loss = acc / (double)nt;
		stall = loss > best - 1e-4 ? stall + 1 : 0;
		if (loss < best)
			best = loss;
		if (stall > 10)
			break;
	}
	return epoch;
}

static void *
fold_run(void *arg)
{
	fold_job *j = arg;
	size_t ntest = 0;
	for (size_t i = 0; i < j->n; i++)
		ntest += j->fold[i] == j->f;
	size_t nt = j->n - ntest, bs = nt < 200 ? nt : 200, d = j->d;
	mlp net = {0};
	float *xt = sbi_malloc((j->n * d + j->n) * sizeof(float)); /* freed below */
	size_t *order = sbi_malloc(2 * nt * sizeof(size_t));      /* freed below */
	float *yb = sbi_malloc(bs * sizeof(float));                /* freed below */
	if (!xt || !order || !yb || mlp_alloc(&net, d, j->h, bs < 1 ? 1 : bs) != SBI_OK) {
		j->rc = SBI_ENOMEM;
		goto done;
	}
	/* Training rows first, then test rows, each in row order. */
	float *yt = xt + j->n * d;
	size_t tr = 0, te = nt;
	for (size_t i = 0; i < j->n; i++) {
		size_t at = j->fold[i] == j->f ? te++ : tr++;
		memcpy(xt + at * d, j->x + i * d, d * sizeof(float));
		yt[at] = j->y[i];
	}
	mt m;
	mt_seed(&m, j->seed);
	mlp_init(&net, &m);
	j->res.epochs = fit(&net, &m, xt, yt, nt, d, j->max_iter, order, yb);
	size_t right = 0;
	for (size_t s = nt; s < j->n; s += bs) {
		size_t rows = j->n - s < bs ? j->n - s : bs;
		memcpy(net.x, xt + s * d, rows * d * sizeof(float));
		mlp_forward(&net, rows);
		for (size_t r = 0; r < rows; r++)
			right += (net.out[r] > 0.5f) == (yt[s + r] > 0.5f);
	}
	j->res.ntest = ntest;
	j->res.accuracy = (double)right / (double)ntest;
	j->rc = SBI_OK;
done:
	mlp_free(&net);
	sbi_free(xt);
	sbi_free(order);
	sbi_free(yb);
	return NULL;
}

/* ---- the test ---- */

void
sbi_c2st_defaults(sbi_c2st_opts *o)
{
	*o = (sbi_c2st_opts){.folds = 5, .seed = 1, .z_score = 1, .max_iter = 10000, .hidden = 0,
			     .threads = 1};
}

static int
check_input(const sbi_mat *a, const sbi_mat *b, const sbi_c2st_opts *o, sbi_err *err)
{
	if (a->ncol == 0 || a->ncol != b->ncol)
		return sbi_err_set(err, SBI_EINVAL, "c2st: a and b need the same number of columns (%zu, %zu)",
				   a->ncol, b->ncol);
	if (a->nrow < 2)
		return sbi_err_set(err, SBI_EINVAL, "c2st: a needs at least 2 rows, got %zu", a->nrow);
	if (b->nrow < 1)
		return sbi_err_set(err, SBI_EINVAL, "c2st: b has no rows");
	if (o->max_iter < 1)
		return sbi_err_set(err, SBI_EINVAL, "c2st: max_iter must be at least 1");
	if (o->threads < 1)
		return sbi_err_set(err, SBI_EINVAL, "c2st: threads must be at least 1");
	const sbi_mat *m[2] = {a, b};
	for (int s = 0; s < 2; s++)
		for (size_t i = 0; i < m[s]->nrow * m[s]->ncol; i++)
			if (!isfinite(m[s]->data[i]))
				return sbi_err_set(err, SBI_EINVAL, "c2st: %s has a non-finite value in row %zu",
						   s ? "b" : "a", i / m[s]->ncol + 1);
	return SBI_OK;
}

/* The rows of a then b as float32 (as the reference reads them), z-scored
 * with a's column mean and standard deviation (ddof 1; a constant column
 * keeps scale 1), both computed in double from the float32 values. */
static void
stack_rows(const sbi_mat *a, const sbi_mat *b, int z, float *x, float *y)
{
	size_t d = a->ncol, n = a->nrow + b->nrow;
	for (size_t i = 0; i < a->nrow * d; i++)
		x[i] = (float)a->data[i];
	for (size_t i = 0; i < b->nrow * d; i++)
		x[a->nrow * d + i] = (float)b->data[i];
	for (size_t i = 0; i < n; i++)
		y[i] = i < a->nrow ? 0.0f : 1.0f;
	if (!z)
		return;
	for (size_t j = 0; j < d; j++) {
		double s = 0.0, ss = 0.0;
		for (size_t i = 0; i < a->nrow; i++)
			s += x[i * d + j];
		float mu = (float)(s / (double)a->nrow);
		for (size_t i = 0; i < a->nrow; i++) {
			double e = (double)x[i * d + j] - (double)mu;
			ss += e * e;
		}
		float sd = (float)sqrt(ss / (double)(a->nrow - 1));
		if (!(sd > 0.0f))
			sd = 1.0f;
		for (size_t i = 0; i < n; i++)
			x[i * d + j] = (x[i * d + j] - mu) / sd;
	}
}

/* Runs the k jobs, up to threads (at most 64) at a time; each job's
 * result depends on its own inputs only, so not on threads. */
static void
run_jobs(fold_job *jobs, size_t k, size_t threads)
{
	pthread_t tid[64];
	if (threads > 64)
		threads = 64;
	for (size_t s = 0; s < k; s += threads) {
		size_t batch = k - s < threads ? k - s : threads;
		int started[64] = {0};
		for (size_t i = 1; i < batch; i++)
			started[i] = pthread_create(&tid[i], NULL, fold_run, &jobs[s + i]) == 0;
		fold_run(&jobs[s]);
		for (size_t i = 1; i < batch; i++) {
			if (started[i])
				pthread_join(tid[i], NULL);
			else
				fold_run(&jobs[s + i]); /* no thread: run it here */
		}
	}
}

int
sbi_c2st(const sbi_mat *a, const sbi_mat *b, const sbi_c2st_opts *o, double *acc, sbi_c2st_fold *folds,
	 sbi_err *err)
{
	int rc = check_input(a, b, o, err);
	if (rc != SBI_OK)
		return rc;
	size_t n = a->nrow + b->nrow, d = a->ncol, k = o->folds;
	if (k < 2 || k > n)
		return sbi_err_set(err, SBI_EINVAL, "c2st: folds must be between 2 and the %zu rows, got %zu",
				   n, k);
	float *x = sbi_malloc((n * d + n) * sizeof(float)); /* freed below */
	size_t *fold = sbi_malloc(n * sizeof(size_t));      /* freed below */
	fold_job *jobs = sbi_calloc(k, sizeof *jobs);        /* freed below */
	if (!x || !fold || !jobs) {
		rc = sbi_err_set(err, SBI_ENOMEM, "c2st: out of memory");
		goto done;
	}
	stack_rows(a, b, o->z_score, x, x + n * d);
	if ((rc = sbi_c2st_kfold(n, k, o->seed, fold, err)) != SBI_OK)
		goto done;
	for (size_t f = 0; f < k; f++)
		jobs[f] = (fold_job){.x = x, .y = x + n * d, .fold = fold, .n = n, .d = d,
				     .h = o->hidden ? o->hidden : 10 * d, .f = f, .max_iter = o->max_iter,
				     .seed = o->seed};
	run_jobs(jobs, k, o->threads);
	double sum = 0.0;
	for (size_t f = 0; f < k; f++) {
		if (jobs[f].rc != SBI_OK) {
			rc = sbi_err_set(err, SBI_ENOMEM, "c2st: out of memory");
			goto done;
		}
		sum += jobs[f].res.accuracy;
		if (folds)
			folds[f] = jobs[f].res;
	}
	*acc = sum / (double)k;
done:
	sbi_free(x);
	sbi_free(fold);
	sbi_free(jobs);
	return rc;
}
