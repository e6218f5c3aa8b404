/* Reverse-mode AD over float32 matrices (see ad.h). */

/* The elementwise loops are the training hot path next to GEMM; the
 * vectorizer only runs on them at -O3 (the project builds at -O2), and
 * only if-converts the tanh clamp without trapping math (no FP exceptions
 * are ever inspected, so results are unchanged). Short row loops stay
 * loops rather than becoming memcpy calls (bias_rows). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("O3", "no-trapping-math", "no-tree-loop-distribute-patterns")
#endif

#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "sbi/ad.h"
#include "sbi/alloc.h"
#include "sbi/err.h"

enum op {
	OP_CONST, OP_PARAM, OP_LINEAR, OP_MATMUL, OP_ADD, OP_SUB, OP_MUL, OP_SCALE, OP_ADDS,
	OP_RELU, OP_TANH, OP_ELU, OP_SILU, OP_SOFTPLUS, OP_LOGSIG, OP_EXP, OP_LOG, OP_SQUARE,
	OP_COLS, OP_CONCAT, OP_PERMUTE, OP_RESHAPE, OP_SUMROWS, OP_LSE, OP_MEAN, OP_RQS, OP_RQS_LOGDET,
	OP_LINEAR_TANH, OP_ADD_REPEAT,
};

typedef struct node {
	int op;
	sbi_var a, b, c;
	sbi_var d, e;   /* OP_LINEAR's second input and weight, or -1 */
	size_t rows, cols;
	float *v, *g;   /* value; gradient (NULL when no gradient flows here) */
	sbi_param *p;   /* OP_PARAM */
	float s;        /* scalar argument */
	size_t i0, k;   /* column start; spline bins */
	const int *perm;
	int inverse;
	int gfresh;     /* g not yet written: the first gradient to arrive may
	                   be stored rather than added, so g needs no clearing */
} node;

/* Arena blocks never move while a pass runs; on reset, several blocks are
 * merged into one so the next pass fits in a single block. */
typedef struct block {
	float *mem;
	size_t cap, used;
} block;

struct sbi_tape {
	node *nodes;
	size_t nnodes, cap;
	block *blocks;
	size_t nblocks;
	int failed;
	int nograd;
	int fast; /* sbi_tape_set_fast */
	/* Fast tapes: transposed parameter weights of this pass, by value
	 * pointer (a chunked loss reads each weight several times). */
	struct { const float *w; float *wt; } wts[32];
	size_t nwts;
};

sbi_param *
sbi_param_alloc(size_t rows, size_t cols)
{
	sbi_param *p = sbi_calloc(1, sizeof *p);
	size_t n = rows * cols > 0 ? rows * cols : 1;
	if (p == NULL)
		return NULL;
	p->rows = rows;
	p->cols = cols;
	p->w = sbi_calloc(n, sizeof(float));
	p->g = sbi_calloc(n, sizeof(float));
	p->m = sbi_calloc(n, sizeof(float));
	p->v = sbi_calloc(n, sizeof(float));
	if (!p->w || !p->g || !p->m || !p->v) {
		sbi_param_free(p);
		return NULL;
	}
	return p;
}

void
sbi_param_free(sbi_param *p)
{
	if (p == NULL)
		return;
	sbi_free(p->w);
	sbi_free(p->g);
	sbi_free(p->m);
	sbi_free(p->v);
	sbi_free(p);
}

void
sbi_params_write(sbi_blobw *w, sbi_param *const *p, size_t n)
{
	sbi_blobw_u64(w, n);
	for (size_t i = 0; i < n; i++) {
		sbi_blobw_u64(w, p[i]->rows);
		sbi_blobw_u64(w, p[i]->cols);
		sbi_blobw_f32s(w, p[i]->w, p[i]->rows * p[i]->cols);
	}
}

int
sbi_params_read(sbi_blobr *r, sbi_param *const *p, size_t n, size_t *at)
{
	*at = n;
	if (sbi_blobr_u64(r) != n)
		return -1;
	for (size_t i = 0; i < n && !r->bad; i++) {
		if (sbi_blobr_u64(r) != p[i]->rows || sbi_blobr_u64(r) != p[i]->cols) {
			*at = i;
			return -1;
		}
		sbi_blobr_f32s(r, p[i]->w, p[i]->rows * p[i]->cols);
	}
	return 0;
}

sbi_tape *
sbi_tape_alloc(void)
{
	return sbi_calloc(1, sizeof(sbi_tape));
}

void
sbi_tape_free(sbi_tape *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->nblocks; i++)
		sbi_free(t->blocks[i].mem);
	sbi_free(t->blocks);
	sbi_free(t->nodes);
	sbi_free(t);
}

void
sbi_tape_reset(sbi_tape *t)
{
	if (t->nblocks > 1) {
		size_t total = 0;
		for (size_t i = 0; i < t->nblocks; i++) {
			total += t->blocks[i].cap;
			sbi_free(t->blocks[i].mem);
		}
		t->blocks[0].mem = sbi_malloc(total * sizeof(float));
		t->blocks[0].cap = t->blocks[0].mem ? total : 0;
		t->nblocks = t->blocks[0].mem ? 1 : 0;
	}
	if (t->nblocks == 1)
		t->blocks[0].used = 0;
	t->nnodes = 0;
	t->nwts = 0;
	t->failed = 0;
}

void
sbi_tape_set_grad(sbi_tape *t, int on)
{
	t->nograd = !on;
}

void
sbi_tape_set_fast(sbi_tape *t, int on)
{
	t->fast = on != 0;
}

int
sbi_tape_failed(const sbi_tape *t)
{
	return t->failed;
}

/* n floats from the arena, 16-float aligned; NULL (and failed) on OOM. */
static float *
arena(sbi_tape *t, size_t n)
{
	n = (n + 15) & ~(size_t)15;
	block *b = t->nblocks ? &t->blocks[t->nblocks - 1] : NULL;
	if (b == NULL || b->cap - b->used < n) {
		size_t cap = n > (1u << 20) ? n : (1u << 20);
		block *nb = sbi_realloc(t->blocks, (t->nblocks + 1) * sizeof *nb);
		float *mem = nb ? sbi_malloc(cap * sizeof(float)) : NULL;
		if (nb)
			t->blocks = nb;
		if (mem == NULL) {
			t->failed = 1;
			return NULL;
		}
		b = &t->blocks[t->nblocks++];
		*b = (block){ mem, cap, 0 };
	}
	float *p = b->mem + b->used;
	b->used += n;
	return p;
}

static int
reserve(sbi_tape *t)
{
	if (t->nnodes < t->cap)
		return 0;
	size_t cap = t->cap ? 2 * t->cap : 256;
	node *nn = sbi_realloc(t->nodes, cap * sizeof *nn);
	if (nn == NULL) {
		t->failed = 1;
		return -1;
	}
	t->nodes = nn;
	t->cap = cap;
	return 0;
}

static int
needs_grad(const sbi_tape *t, sbi_var v)
{
	return v >= 0 && t->nodes[v].g != NULL;
}

/* A new node of the given shape; its gradient buffer exists (uncleared,
 * gfresh) when any of a, b, c carries a gradient or grad is forced. */
static sbi_var
push(sbi_tape *t, int op, size_t rows, size_t cols, sbi_var a, sbi_var b, sbi_var c, int grad)
{
	if (reserve(t) != 0)
		return -1;
	node *n = &t->nodes[t->nnodes];
	memset(n, 0, sizeof *n);
	n->op = op;
	n->a = a, n->b = b, n->c = c;
	n->d = n->e = -1;
	n->rows = rows, n->cols = cols;
	grad = !t->nograd && (grad || needs_grad(t, a) || needs_grad(t, b) || needs_grad(t, c));
	n->v = arena(t, rows * cols);
	if (grad)
		n->g = arena(t, rows * cols), n->gfresh = 1;
	if (n->v == NULL || (grad && n->g == NULL))
		return -1;
	return (sbi_var)t->nnodes++;
}

#define N(v) (&t->nodes[v])

/* Before a gradient arrives at a (backward): returns 1 when the caller
 * may store it (assign_ok and nothing arrived yet); otherwise clears a
 * fresh buffer so the caller adds. */
static int
grad_begin(node *a, int assign_ok)
{
	int fresh = a->gfresh;
	a->gfresh = 0;
	if (fresh && !assign_ok)
		memset(a->g, 0, a->rows * a->cols * sizeof(float));
	return fresh && assign_ok;
}

/* a's gradient, cleared if nothing arrived yet, to add into. */
static float *
grad_add(node *a)
{
	grad_begin(a, 0);
	return a->g;
}
/* Operations on a failed tape return -1 and do nothing. */
#define GUARD(...) do { if (t->failed) return -1; } while (0)

float *sbi_ad_value(sbi_tape *t, sbi_var v) { return N(v)->v; }
float *sbi_ad_grad(sbi_tape *t, sbi_var v) { return N(v)->g; }
size_t sbi_ad_rows(const sbi_tape *t, sbi_var v) { return t->nodes[v].rows; }
size_t sbi_ad_cols_of(const sbi_tape *t, sbi_var v) { return t->nodes[v].cols; }

sbi_var
sbi_ad_const(sbi_tape *t, const float *data, size_t rows, size_t cols)
{
	GUARD();
	sbi_var v = push(t, OP_CONST, rows, cols, -1, -1, -1, 0);
	if (v >= 0)
		memcpy(N(v)->v, data, rows * cols * sizeof(float));
	return v;
}

sbi_var
sbi_ad_param(sbi_tape *t, sbi_param *p)
{
	GUARD();
	if (reserve(t) != 0)
		return -1;
	/* The node aliases the parameter's own buffers. */
	t->nodes[t->nnodes] = (node){ .op = OP_PARAM, .a = -1, .b = -1, .c = -1, .rows = p->rows,
		.cols = p->cols, .v = p->w, .g = t->nograd ? NULL : p->g, .p = p };
	return (sbi_var)t->nnodes++;
}

/* ---- linear algebra ---- */

/* Every product writes C = A B as cblas_sgemm's C = 1 A B + 1 C on a C
 * cleared here (for gradients, by grad_begin): with beta = 0 OpenBLAS
 * first zeroes C in its sgemm_beta pass, whose scalar stores were 10% of
 * SNPE's training time on a Zen 3 CPU; memset costs a fraction of that.
 * The kernel adds its sums to the zeros, so the results are the same. */
static void
clear_out(float *c, size_t len)
{
	memset(c, 0, len * sizeof(float));
}

/* The bias b (1 x m) in each of n rows of out: one loop rather than n
 * memcpy calls of a few hundred bytes. */
static SBI_AD_VECTOR void
bias_rows(float *restrict out, const float *restrict b, size_t n, size_t m)
{
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < m; j++)
			out[i * m + j] = b[j];
}

/* o (1 x m) += the column sums of g (n x m). */
static SBI_AD_VECTOR void
colsum_into(float *restrict o, const float *restrict g, size_t n, size_t m)
{
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < m; j++)
			o[j] += g[i * m + j];
}

sbi_var
sbi_ad_linear2(sbi_tape *t, sbi_var x, sbi_var w, sbi_var x2, sbi_var w2, sbi_var b)
{
	GUARD();
	size_t n = N(x)->rows, k = N(x)->cols, m = N(w)->cols;
	SBI_ASSERT(N(w)->rows == k && (b < 0 || (N(b)->rows == 1 && N(b)->cols == m)));
	SBI_ASSERT(x2 < 0 || (N(x2)->rows == n && N(w2)->rows == N(x2)->cols && N(w2)->cols == m));
	sbi_var y = push(t, OP_LINEAR, n, m, x, w, b, x2 >= 0 && (needs_grad(t, x2) || needs_grad(t, w2)));
	if (y < 0)
		return -1;
	N(y)->d = x2, N(y)->e = w2;
	float *out = N(y)->v;
	if (b >= 0)
		bias_rows(out, N(b)->v, n, m);
	else
		clear_out(out, n * m);
	/* Masked weights are kept zero by the optimizer, so W is used as is. */
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)m, (int)k, 1.0f, N(x)->v,
	    (int)k, N(w)->v, (int)m, 1.0f, out, (int)m);
	if (x2 >= 0)
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)m, (int)N(x2)->cols, 1.0f,
		    N(x2)->v, (int)N(x2)->cols, N(w2)->v, (int)m, 1.0f, out, (int)m);
	return y;
}

sbi_var
sbi_ad_linear(sbi_tape *t, sbi_var x, sbi_var w, sbi_var b)
{
	return sbi_ad_linear2(t, x, w, -1, -1, b);
}

sbi_var
sbi_ad_matmul(sbi_tape *t, sbi_var a, sbi_var b)
{
	GUARD();
	size_t n = N(a)->rows, k = N(a)->cols, m = N(b)->cols;
	SBI_ASSERT(N(b)->rows == k);
	sbi_var y = push(t, OP_MATMUL, n, m, a, b, -1, 0);
	if (y < 0)
		return -1;
	clear_out(N(y)->v, n * m);
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)m, (int)k, 1.0f, N(a)->v,
	    (int)k, N(b)->v, (int)m, 1.0f, N(y)->v, (int)m);
	return y;
}

/* Flat elementwise loops (restrict, so they vectorize): o += a, o -= a,
 * o *= a, o += a b. */
static SBI_AD_VECTOR void
add_into(float *restrict o, const float *restrict a, size_t n)
{
	for (size_t i = 0; i < n; i++)
		o[i] += a[i];
}

static SBI_AD_VECTOR void
sub_into(float *restrict o, const float *restrict a, size_t n)
{
	for (size_t i = 0; i < n; i++)
		o[i] -= a[i];
}

static SBI_AD_VECTOR void
mul_into(float *restrict o, const float *restrict a, size_t n)
{
	for (size_t i = 0; i < n; i++)
		o[i] *= a[i];
}

static SBI_AD_VECTOR void
fma_into(float *restrict o, const float *restrict a, const float *restrict b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		o[i] += a[i] * b[i];
}

/* o = a + b, a - b or a b over n elements. */
static SBI_AD_VECTOR void
binary_array(int op, float *restrict o, const float *restrict a, const float *restrict b, size_t n)
{
	if (op == OP_ADD)
		for (size_t i = 0; i < n; i++)
			o[i] = a[i] + b[i];
	else if (op == OP_SUB)
		for (size_t i = 0; i < n; i++)
			o[i] = a[i] - b[i];
	else
		for (size_t i = 0; i < n; i++)
			o[i] = a[i] * b[i];
}

/* b (cols x rows) = the transpose of a (rows x cols). */
static void
transpose(float *restrict b, const float *restrict a, size_t rows, size_t cols)
{
	for (size_t i = 0; i < rows; i++)
		for (size_t j = 0; j < cols; j++)
			b[j * rows + i] = a[i * cols + j];
}

/* On a fast tape (sbi_tape_set_fast), dX = dY W^T as dY (W^T): OpenBLAS
 * 0.3.21 runs a row-major (NoTrans, Trans) product whose output has more
 * than 1,200 elements on its packed kernel (its small-matrix kernels
 * refuse that case), which packs both operands: with its beta = 0 pass
 * (no longer used, see clear_out) a quarter of SNPE's training time on
 * an AVX-512 Intel, 1.6 times the forward product's. With W transposed first (k x m, a few thousand
 * floats) the product is a (NoTrans, NoTrans) one, which takes the
 * small-matrix kernel as the forward pass does (M N K <= 1e6). Its
 * rounding differs from the packed kernel's in the last bits, hence
 * only on a fast tape. 1 when it ran. */
static int
grad_input_nn(sbi_tape *t, node *y, node *x, node *w)
{
	size_t n = x->rows, k = x->cols, m = w->cols;
	if (!t->fast || (double)n * (double)k * (double)m > 1e6 || n * k <= 1200)
		return 0;
	float *wt = NULL;
	for (size_t i = 0; w->p && i < t->nwts && wt == NULL; i++)
		wt = t->wts[i].w == w->v ? t->wts[i].wt : NULL;
	if (wt == NULL) {
		if ((wt = arena(t, k * m)) == NULL) { /* fall back to the packed product */
			t->failed = 0;
			return 0;
		}
		transpose(wt, w->v, k, m);
		/* A parameter's values are fixed during a pass: keep its transpose. */
		if (w->p && t->nwts < sizeof t->wts / sizeof t->wts[0])
			t->wts[t->nwts].w = w->v, t->wts[t->nwts++].wt = wt;
	}
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)k, (int)m, 1.0f, y->g, (int)m, wt,
	    (int)k, 1.0f, x->g, (int)k);
	return 1;
}

/* Y = X W + X2 W2 + b.  dX = dY W^T;  dW = X^T dY (masked), the same
 * for X2 and W2;  db = column sums of dY. */
static void
back_product(sbi_tape *t, node *y, node *x, node *w)
{
	size_t n = x->rows, k = x->cols, m = w->cols;
	if (x->g) {
		grad_add(x);
		if (!grad_input_nn(t, y, x, w))
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)k, (int)m, 1.0f, y->g, (int)m,
			    w->v, (int)m, 1.0f, x->g, (int)k);
	}
	if (w->g) {
		cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)k, (int)m, (int)n, 1.0f, x->v, (int)k,
		    y->g, (int)m, 1.0f, grad_add(w), (int)m);
		if (w->p && w->p->mask)
			mul_into(w->g, w->p->mask, k * m);
	}
}

/* acc (len) += the blocks of g (blocks x len) in turn. */
static SBI_AD_VECTOR void
block_sum_into(float *restrict acc, const float *restrict g, size_t blocks, size_t len)
{
	for (size_t i = 0; i < blocks; i++)
		for (size_t e = 0; e < len; e++)
			acc[e] += g[i * len + e];
}

/* o (1 x m) += the column sums of g (n x m). On a fast tape in groups of
 * 16 rows (whole vectors): 16 partial sums per column, then added in row
 * order, which rounds differently from one sum per column. */
static void
bias_grad(sbi_tape *t, float *o, const float *g, size_t n, size_t m)
{
	float *acc = t->fast && n >= 32 ? arena(t, 16 * m) : NULL;
	if (acc == NULL) {
		t->failed = 0;
		colsum_into(o, g, n, m);
		return;
	}
	size_t groups = n / 16;
	memcpy(acc, g, 16 * m * sizeof(float));
	block_sum_into(acc, g + 16 * m, groups - 1, 16 * m);
	colsum_into(o, acc, 16, m);
	colsum_into(o, g + groups * 16 * m, n - groups * 16, m);
}

static void
back_linear(sbi_tape *t, node *y)
{
	back_product(t, y, N(y->a), N(y->b));
	if (y->d >= 0)
		back_product(t, y, N(y->d), N(y->e));
	if (y->c >= 0 && N(y->c)->g)
		bias_grad(t, grad_add(N(y->c)), y->g, y->rows, y->cols);
}

/* C = A B.  dA = dC B^T;  dB = A^T dC. */
static void
back_matmul(sbi_tape *t, node *y)
{
	node *a = N(y->a), *b = N(y->b);
	size_t n = a->rows, k = a->cols, m = b->cols;
	if (a->g)
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)k, (int)m, 1.0f, y->g, (int)m,
		    b->v, (int)m, 1.0f, grad_add(a), (int)k);
	if (b->g)
		cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)k, (int)m, (int)n, 1.0f, a->v, (int)k,
		    y->g, (int)m, 1.0f, grad_add(b), (int)m);
}

/* ---- elementwise binary (b may be a broadcast row) ---- */

static sbi_var
binary(sbi_tape *t, int op, sbi_var a, sbi_var b)
{
	GUARD();
	node *na = N(a), *nb = N(b);
	SBI_ASSERT(na->cols == nb->cols && (nb->rows == na->rows || nb->rows == 1));
	sbi_var y = push(t, op, na->rows, na->cols, a, b, -1, 0);
	if (y < 0)
		return -1;
	na = N(a), nb = N(b);
	size_t m = na->cols;
	if (nb->rows == na->rows) /* one pass over the whole matrix */
		binary_array(op, N(y)->v, na->v, nb->v, na->rows * m);
	else
		for (size_t i = 0; i < na->rows; i++)
			binary_array(op, N(y)->v + i * m, na->v + i * m, nb->v, m);
	return y;
}

sbi_var
sbi_ad_add_repeat(sbi_tape *t, sbi_var a, sbi_var b, size_t rep)
{
	GUARD();
	node *na = N(a), *nb = N(b);
	SBI_ASSERT(rep >= 1 && na->cols == nb->cols && nb->rows * rep == na->rows);
	sbi_var y = push(t, OP_ADD_REPEAT, na->rows, na->cols, a, b, -1, 0);
	if (y < 0)
		return -1;
	na = N(a), nb = N(b);
	N(y)->k = rep;
	size_t m = na->cols;
	for (size_t i = 0; i < na->rows; i++)
		binary_array(OP_ADD, N(y)->v + i * m, na->v + i * m, nb->v + (i / rep) * m, m);
	return y;
}

/* d(a + repeat(b)) = (dy, the sums of dy over each row's repeats). */
static void
back_add_repeat(sbi_tape *t, node *y)
{
	node *a = N(y->a), *b = N(y->b);
	size_t m = y->cols, n = y->rows * m;
	if (a->g && grad_begin(a, 1))
		memcpy(a->g, y->g, n * sizeof(float));
	else if (a->g)
		add_into(a->g, y->g, n);
	if (b->g)
		for (size_t i = 0; i < y->rows; i++)
			add_into(grad_add(b) + (i / y->k) * m, y->g + i * m, m);
}

sbi_var sbi_ad_add(sbi_tape *t, sbi_var a, sbi_var b) { return binary(t, OP_ADD, a, b); }
sbi_var sbi_ad_sub(sbi_tape *t, sbi_var a, sbi_var b) { return binary(t, OP_SUB, a, b); }
sbi_var sbi_ad_mul(sbi_tape *t, sbi_var a, sbi_var b) { return binary(t, OP_MUL, a, b); }

/* d(ab) = (dy b, dy a); a broadcast b sums its gradient over rows. */
static void
back_mul(node *y, node *a, node *b)
{
	size_t m = y->cols, n = y->rows * m;
	int whole = b->rows == y->rows;
	if (a->g && whole)
		fma_into(grad_add(a), y->g, b->v, n);
	else if (a->g)
		for (size_t i = 0; i < y->rows; i++)
			fma_into(grad_add(a) + i * m, y->g + i * m, b->v, m);
	if (b->g && whole)
		fma_into(grad_add(b), y->g, a->v, n);
	else if (b->g)
		for (size_t i = 0; i < y->rows; i++)
			fma_into(grad_add(b), y->g + i * m, a->v + i * m, m);
}

/* d(a+b) = (dy, dy); d(a-b) = (dy, -dy), dy stored as is into a fresh
 * gradient; a broadcast b sums its gradient over rows. */
static void
back_binary(sbi_tape *t, node *y)
{
	node *a = N(y->a), *b = N(y->b);
	size_t m = y->cols, n = y->rows * m;
	if (y->op == OP_MUL) {
		back_mul(y, a, b);
		return;
	}
	if (a->g && grad_begin(a, 1))
		memcpy(a->g, y->g, n * sizeof(float));
	else if (a->g)
		add_into(a->g, y->g, n);
	if (b->g == NULL)
		return;
	int whole = b->rows == y->rows;
	if (whole && y->op == OP_ADD && grad_begin(b, 1))
		memcpy(b->g, y->g, n * sizeof(float));
	else
		for (size_t i = 0, rows = whole ? 1 : y->rows, len = whole ? n : m; i < rows; i++)
			(y->op == OP_SUB ? sub_into : add_into)(grad_add(b), y->g + i * len, len);
}

/* ---- elementwise unary ---- */

static float
softplus(float x)
{
	return x > 20.0f ? x : x < -20.0f ? expf(x) : log1pf(expf(x));
}

static float
sigmoid(float x)
{
	return x >= 0 ? 1.0f / (1.0f + expf(-x)) : expf(x) / (1.0f + expf(x));
}

/* tanh as a clamped rational function (the 13/6 minimax form used by
 * Eigen's fast float tanh): a few ulp from tanhf and about ten times
 * faster than glibc's, which dominated training time (tanh is the MADE
 * activation). Tested against tanh in tests/engine/test_ad.c. */
static inline float
fast_tanh(float x)
{
	const float clamp = 7.90531110763549805f;
	x = x < -clamp ? -clamp : x;
	x = x > clamp ? clamp : x;
	float x2 = x * x;
	float p = -2.76076847742355e-16f;
	p = p * x2 + 2.00018790482477e-13f;
	p = p * x2 + -8.60467152213735e-11f;
	p = p * x2 + 5.12229709037114e-08f;
	p = p * x2 + 1.48572235717979e-05f;
	p = p * x2 + 6.37261928875436e-04f;
	p = p * x2 + 4.89352455891786e-03f;
	p = p * x;
	float q = 1.19825839466702e-06f;
	q = q * x2 + 1.18534705686654e-04f;
	q = q * x2 + 2.26843463243900e-03f;
	q = q * x2 + 4.89352518554385e-03f;
	return p / q;
}

/* ---- vectorizable exp and log (fast tapes) ----
 *
 * Cephes's single-precision expf and logf (S. Moshier): the same range
 * reductions and polynomials, written without branches or calls so a loop
 * of them vectorizes; plain multiplies and adds (the engine builds with
 * -ffp-contract=off), so every clone and machine gives the same bits.
 * Accuracy against double-precision libm (tests/engine/test_ad.c): exp
 * within 2 ulp on [-87, 88] (clamped outside), log within 2 ulp on
 * positive normal floats, softplus and sigmoid within 1e-6 relative. */

static inline float
bits_to_float(uint32_t u)
{
	float f;
	memcpy(&f, &u, sizeof f);
	return f;
}

static inline uint32_t
float_to_bits(float f)
{
	uint32_t u;
	memcpy(&u, &f, sizeof u);
	return u;
}

/* e^x: x = k ln 2 + r, |r| <= ln 2 / 2, e^r = 1 + r + r^2 p(r), 2^k in
 * the exponent bits. */
static inline float
vexpf(float x)
{
	x = x < -87.0f ? -87.0f : x;
	x = x > 88.0f ? 88.0f : x;
	const float magic = 12582912.0f; /* 1.5 2^23: adding it rounds to an integer */
	float k = (x * 1.44269504088896341f + magic) - magic;
	float r = (x - k * 0.693359375f) - k * -2.12194440e-4f;
	float p = 1.9875691500e-4f;
	p = p * r + 1.3981999507e-3f;
	p = p * r + 8.3334519073e-3f;
	p = p * r + 4.1665795894e-2f;
	p = p * r + 1.6666665459e-1f;
	p = p * r + 5.0000001201e-1f;
	float e = (p * (r * r) + r) + 1.0f;
	/* 2^k, k in [-126, 127], as two normal factors; a NaN x (k NaN) keeps
	 * e NaN and converts k = 0, not an undefined conversion */
	int32_t ki = (int32_t)(k == k ? k : 0.0f), k1 = ki / 2, k2 = ki - k1;
	return e * bits_to_float((uint32_t)(k1 + 127) << 23) * bits_to_float((uint32_t)(k2 + 127) << 23);
}

/* log x for positive normal x: x = m 2^e, m in [sqrt(1/2), sqrt(2)),
 * log x = log m + e log 2 with log(1 + f) = f - f^2/2 + f^3 p(f). */
static inline float
vlogf(float x)
{
	uint32_t u = float_to_bits(x);
	float e = (float)((int32_t)(u >> 23) - 127);
	float m = bits_to_float((u & 0x007fffffu) | 0x3f800000u); /* [1, 2) */
	int big = m > 1.41421356237f;
	m = big ? 0.5f * m : m;
	e = big ? e + 1.0f : e;
	float f = m - 1.0f, z = f * f;
	float p = 7.0376836292e-2f;
	p = p * f + -1.1514610310e-1f;
	p = p * f + 1.1676998740e-1f;
	p = p * f + -1.2420140846e-1f;
	p = p * f + 1.4249322787e-1f;
	p = p * f + -1.6668057665e-1f;
	p = p * f + 2.0000714765e-1f;
	p = p * f + -2.4999993993e-1f;
	p = p * f + 3.3333331174e-1f;
	float y = f * (z * p) + e * -2.12194440e-4f;
	y = y + -0.5f * z;
	return (f + y) + e * 0.693359375f;
}

/* softplus as softplus() above, with log(1 + u) = log(w) u / (w - 1),
 * w = 1 + u rounded (exact when w = 1): accurate where 1 + u rounds. */
static inline float
vsoftplus(float x)
{
	float u = vexpf(x), w = 1.0f + u, d = w - 1.0f;
	float l = d == 0.0f ? u : vlogf(w) * (u / (d == 0.0f ? 1.0f : d));
	return x > 20.0f ? x : x < -20.0f ? u : l;
}

/* 1 / (1 + e^-x), from e^-|x| so nothing overflows. */
static inline float
vsigmoid(float x)
{
	float e = vexpf(x < 0 ? x : -x), s = 1.0f / (1.0f + e);
	return x >= 0 ? s : e * s;
}

/* The fast tape's softplus and log, and their gradients (ga += gy f'). */
static SBI_AD_VECTOR int
unary_vec(int op, float *restrict o, const float *restrict x, size_t n)
{
	switch (op) {
	case OP_LOG: for (size_t i = 0; i < n; i++) o[i] = vlogf(x[i]); return 1;
	case OP_SOFTPLUS: for (size_t i = 0; i < n; i++) o[i] = vsoftplus(x[i]); return 1;
	}
	return 0;
}

static SBI_AD_VECTOR int
unary_back_vec(int op, float *restrict ga, const float *restrict gy, const float *restrict x, size_t n)
{
	if (op != OP_SOFTPLUS)
		return 0;
	for (size_t i = 0; i < n; i++)
		ga[i] += gy[i] * vsigmoid(x[i]);
	return 1;
}

float sbi__ad_vec_scalar(int which, float x);
/* For tests: 0 exp, 1 log, 2 softplus, 3 sigmoid. */
float
sbi__ad_vec_scalar(int which, float x)
{
	switch (which) {
	case 0: return vexpf(x);
	case 1: return vlogf(x);
	case 2: return vsoftplus(x);
	default: return vsigmoid(x);
	}
}

/* Separate loops with restrict pointers so they vectorize. */
static SBI_AD_VECTOR void
tanh_array(float *restrict out, const float *restrict in, size_t n)
{
	for (size_t i = 0; i < n; i++)
		out[i] = fast_tanh(in[i]);
}

static SBI_AD_VECTOR void
tanh_back_array(float *restrict ga, const float *restrict gy, const float *restrict y, size_t n)
{
	for (size_t i = 0; i < n; i++)
		ga[i] += gy[i] * (1 - y[i] * y[i]);
}

static SBI_AD_VECTOR void
tanh_back_set(float *restrict ga, const float *restrict gy, const float *restrict y, size_t n)
{
	for (size_t i = 0; i < n; i++)
		ga[i] = gy[i] * (1 - y[i] * y[i]);
}

/* v = tanh(v) in place: one flat loop, whole vectors but the last few. */
static SBI_AD_VECTOR void
tanh_inplace(float *restrict v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		v[i] = fast_tanh(v[i]);
}

/* g *= 1 - y^2 in place: tanh's gradient, turned into its input's. */
static SBI_AD_VECTOR void
tanh_grad_inplace(float *restrict g, const float *restrict y, size_t n)
{
	for (size_t i = 0; i < n; i++)
		g[i] *= 1 - y[i] * y[i];
}

/* tanh(x W + b) as one node: the product adds straight onto the bias
 * rows in the output, then tanh runs in place, saving a node and two
 * passes over the hidden units (the MADE's hidden blocks). */
sbi_var
sbi_ad_linear_tanh(sbi_tape *t, sbi_var x, sbi_var w, sbi_var b)
{
	GUARD();
	size_t n = N(x)->rows, k = N(x)->cols, m = N(w)->cols;
	SBI_ASSERT(N(w)->rows == k && N(b)->rows == 1 && N(b)->cols == m);
	sbi_var y = push(t, OP_LINEAR_TANH, n, m, x, w, b, 0);
	if (y < 0)
		return -1;
	bias_rows(N(y)->v, N(b)->v, n, m);
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)m, (int)k, 1.0f, N(x)->v,
	    (int)k, N(w)->v, (int)m, 1.0f, N(y)->v, (int)m);
	tanh_inplace(N(y)->v, n * m);
	return y;
}

/* The gradient with respect to x W + b is dy (1 - y^2), formed in dy's
 * buffer (no one reads dy after this node), then as for a linear node. */
static void
back_linear_tanh(sbi_tape *t, node *y)
{
	tanh_grad_inplace(y->g, y->v, y->rows * y->cols);
	back_linear(t, y);
}

float sbi__ad_tanh_scalar(float x);
float
sbi__ad_tanh_scalar(float x)
{
	return fast_tanh(x);
}

static float
unary_f(int op, float x, float s)
{
	switch (op) {
	case OP_SCALE: return s * x;
	case OP_ADDS: return x + s;
	case OP_RELU: return x > 0 ? x : 0;
	case OP_TANH: return fast_tanh(x);
	case OP_ELU: return x > 0 ? x : expm1f(x);
	case OP_SILU: return x * sigmoid(x);
	case OP_SOFTPLUS: return softplus(x);
	case OP_LOGSIG: return -softplus(-x);
	case OP_EXP: return expf(x);
	case OP_LOG: return logf(x);
	case OP_SQUARE: return x * x;
	}
	return NAN;
}

/* dy/dx from x and y = f(x):
 *   tanh' = 1 - y^2;  elu' = 1 (x > 0) or y + 1;  silu' = sig(x)(1 + x(1 - sig(x)));
 *   softplus' = sig(x);  log_sigmoid' = 1 - sig(x) = sig(-x);  exp' = y;  log' = 1/x;
 *   square' = 2x. */
static float
unary_df(int op, float x, float y, float s)
{
	switch (op) {
	case OP_SCALE: return s;
	case OP_ADDS: return 1;
	case OP_RELU: return x > 0 ? 1.0f : 0.0f;
	case OP_TANH: return 1 - y * y;
	case OP_ELU: return x > 0 ? 1.0f : y + 1;
	case OP_SILU: { float sg = sigmoid(x); return sg * (1 + x * (1 - sg)); }
	case OP_SOFTPLUS: return sigmoid(x);
	case OP_LOGSIG: return sigmoid(-x);
	case OP_EXP: return y;
	case OP_LOG: return 1 / x;
	case OP_SQUARE: return 2 * x;
	}
	return NAN;
}

/* The flows' affine scale and base density (softplus, log, +s, s x, x^2)
 * as one loop per operation instead of a switch per element: the same
 * expressions as unary_f and unary_df, so the same results, but the
 * arithmetic ones vectorize. 0 when op has no loop here. */
static SBI_AD_VECTOR int
unary_fast(int op, float *restrict o, const float *restrict x, float s, size_t n)
{
	switch (op) {
	case OP_SCALE: for (size_t i = 0; i < n; i++) o[i] = s * x[i]; return 1;
	case OP_ADDS: for (size_t i = 0; i < n; i++) o[i] = x[i] + s; return 1;
	case OP_SQUARE: for (size_t i = 0; i < n; i++) o[i] = x[i] * x[i]; return 1;
	case OP_LOG: for (size_t i = 0; i < n; i++) o[i] = logf(x[i]); return 1;
	case OP_SOFTPLUS: for (size_t i = 0; i < n; i++) o[i] = softplus(x[i]); return 1;
	}
	return 0;
}

/* ga += gy f'(x) for the operations of unary_fast (unary_df's expressions). */
static SBI_AD_VECTOR int
unary_back_fast(int op, float *restrict ga, const float *restrict gy, const float *restrict x, float s, size_t n)
{
	switch (op) {
	case OP_SCALE: for (size_t i = 0; i < n; i++) ga[i] += gy[i] * s; return 1;
	case OP_ADDS: for (size_t i = 0; i < n; i++) ga[i] += gy[i] * 1.0f; return 1;
	case OP_SQUARE: for (size_t i = 0; i < n; i++) ga[i] += gy[i] * (2 * x[i]); return 1;
	case OP_LOG: for (size_t i = 0; i < n; i++) ga[i] += gy[i] * (1 / x[i]); return 1;
	case OP_SOFTPLUS: for (size_t i = 0; i < n; i++) ga[i] += gy[i] * sigmoid(x[i]); return 1;
	}
	return 0;
}

static sbi_var
unary(sbi_tape *t, int op, sbi_var a, float s)
{
	GUARD();
	sbi_var y = push(t, op, N(a)->rows, N(a)->cols, a, -1, -1, 0);
	if (y < 0)
		return -1;
	node *na = N(a), *ny = N(y);
	ny->s = s;
	size_t n = ny->rows * ny->cols;
	if (op == OP_TANH) /* the hot activation */
		tanh_array(ny->v, na->v, n);
	else if (t->fast && unary_vec(op, ny->v, na->v, n))
		;
	else if (!unary_fast(op, ny->v, na->v, s, n))
		for (size_t i = 0; i < n; i++)
			ny->v[i] = unary_f(op, na->v[i], s);
	return y;
}

static void
back_unary(sbi_tape *t, node *y)
{
	node *a = N(y->a);
	size_t n = y->rows * y->cols;
	if (y->op == OP_TANH && grad_begin(a, 1))
		tanh_back_set(a->g, y->g, y->v, n);
	else if (y->op == OP_TANH)
		tanh_back_array(a->g, y->g, y->v, n);
	else {
		float *ga = grad_add(a);
		if (t->fast && unary_back_vec(y->op, ga, y->g, a->v, n))
			;
		else if (!unary_back_fast(y->op, ga, y->g, a->v, y->s, n))
			for (size_t i = 0; i < n; i++)
				ga[i] += y->g[i] * unary_df(y->op, a->v[i], y->v[i], y->s);
	}
}

sbi_var sbi_ad_scale(sbi_tape *t, sbi_var a, float s) { return unary(t, OP_SCALE, a, s); }
sbi_var sbi_ad_add_scalar(sbi_tape *t, sbi_var a, float s) { return unary(t, OP_ADDS, a, s); }
sbi_var sbi_ad_relu(sbi_tape *t, sbi_var a) { return unary(t, OP_RELU, a, 0); }
sbi_var sbi_ad_tanh(sbi_tape *t, sbi_var a) { return unary(t, OP_TANH, a, 0); }
sbi_var sbi_ad_elu(sbi_tape *t, sbi_var a) { return unary(t, OP_ELU, a, 0); }
sbi_var sbi_ad_silu(sbi_tape *t, sbi_var a) { return unary(t, OP_SILU, a, 0); }
sbi_var sbi_ad_softplus(sbi_tape *t, sbi_var a) { return unary(t, OP_SOFTPLUS, a, 0); }
sbi_var sbi_ad_log_sigmoid(sbi_tape *t, sbi_var a) { return unary(t, OP_LOGSIG, a, 0); }
sbi_var sbi_ad_exp(sbi_tape *t, sbi_var a) { return unary(t, OP_EXP, a, 0); }
sbi_var sbi_ad_log(sbi_tape *t, sbi_var a) { return unary(t, OP_LOG, a, 0); }
sbi_var sbi_ad_square(sbi_tape *t, sbi_var a) { return unary(t, OP_SQUARE, a, 0); }

/* ---- shape ---- */

sbi_var
sbi_ad_cols(sbi_tape *t, sbi_var a, size_t start, size_t count)
{
	GUARD();
	SBI_ASSERT(start + count <= N(a)->cols);
	sbi_var y = push(t, OP_COLS, N(a)->rows, count, a, -1, -1, 0);
	if (y < 0)
		return -1;
	node *na = N(a), *ny = N(y);
	ny->i0 = start;
	for (size_t i = 0; i < ny->rows; i++)
		memcpy(ny->v + i * count, na->v + i * na->cols + start, count * sizeof(float));
	return y;
}

sbi_var
sbi_ad_concat(sbi_tape *t, sbi_var a, sbi_var b)
{
	GUARD();
	SBI_ASSERT(N(a)->rows == N(b)->rows);
	size_t ma = N(a)->cols, mb = N(b)->cols;
	sbi_var y = push(t, OP_CONCAT, N(a)->rows, ma + mb, a, b, -1, 0);
	if (y < 0)
		return -1;
	node *na = N(a), *nb = N(b), *ny = N(y);
	for (size_t i = 0; i < ny->rows; i++) {
		memcpy(ny->v + i * (ma + mb), na->v + i * ma, ma * sizeof(float));
		memcpy(ny->v + i * (ma + mb) + ma, nb->v + i * mb, mb * sizeof(float));
	}
	return y;
}

sbi_var
sbi_ad_permute_cols(sbi_tape *t, sbi_var a, const int *perm)
{
	GUARD();
	sbi_var y = push(t, OP_PERMUTE, N(a)->rows, N(a)->cols, a, -1, -1, 0);
	if (y < 0)
		return -1;
	node *na = N(a), *ny = N(y);
	ny->perm = perm;
	size_t m = ny->cols;
	for (size_t i = 0; i < ny->rows; i++)
		for (size_t j = 0; j < m; j++)
			ny->v[i * m + j] = na->v[i * m + (size_t)perm[j]];
	return y;
}

sbi_var
sbi_ad_reshape(sbi_tape *t, sbi_var a, size_t rows, size_t cols)
{
	GUARD();
	SBI_ASSERT(rows * cols == N(a)->rows * N(a)->cols);
	sbi_var y = push(t, OP_RESHAPE, rows, cols, a, -1, -1, 0);
	if (y >= 0)
		memcpy(N(y)->v, N(a)->v, rows * cols * sizeof(float));
	return y;
}

/* Slicing, concatenation and permutation route gradients back to where the
 * values came from. */
static void
back_shape(sbi_tape *t, node *y)
{
	node *a = N(y->a);
	if (a->g)
		grad_add(a);
	if (y->op == OP_CONCAT && N(y->b)->g)
		grad_add(N(y->b));
	size_t m = y->cols;
	for (size_t i = 0; i < y->rows; i++) {
		const float *gy = y->g + i * m;
		if (y->op == OP_COLS && a->g)
			for (size_t j = 0; j < m; j++)
				a->g[i * a->cols + y->i0 + j] += gy[j];
		else if (y->op == OP_PERMUTE && a->g)
			for (size_t j = 0; j < m; j++)
				a->g[i * m + (size_t)y->perm[j]] += gy[j];
		else if (y->op == OP_RESHAPE && a->g)
			for (size_t j = 0; j < m; j++)
				a->g[i * m + j] += gy[j];
		else if (y->op == OP_CONCAT) {
			node *b = N(y->b);
			for (size_t j = 0; a->g && j < a->cols; j++)
				a->g[i * a->cols + j] += gy[j];
			for (size_t j = 0; b->g && j < b->cols; j++)
				b->g[i * b->cols + j] += gy[a->cols + j];
		}
	}
}

/* ---- reductions ---- */

sbi_var
sbi_ad_sum_rows(sbi_tape *t, sbi_var a)
{
	GUARD();
	sbi_var y = push(t, OP_SUMROWS, N(a)->rows, 1, a, -1, -1, 0);
	if (y < 0)
		return -1;
	node *na = N(a), *ny = N(y);
	for (size_t i = 0; i < na->rows; i++) {
		float s = 0;
		for (size_t j = 0; j < na->cols; j++)
			s += na->v[i * na->cols + j];
		ny->v[i] = s;
	}
	return y;
}

sbi_var
sbi_ad_logsumexp_rows(sbi_tape *t, sbi_var a)
{
	GUARD();
	sbi_var y = push(t, OP_LSE, N(a)->rows, 1, a, -1, -1, 0);
	if (y < 0)
		return -1;
	node *na = N(a), *ny = N(y);
	for (size_t i = 0; i < na->rows; i++) {
		const float *r = na->v + i * na->cols;
		float mx = -INFINITY, s = 0;
		for (size_t j = 0; j < na->cols; j++)
			mx = r[j] > mx ? r[j] : mx;
		for (size_t j = 0; j < na->cols; j++)
			s += expf(r[j] - mx);
		ny->v[i] = mx + logf(s);
	}
	return y;
}

sbi_var
sbi_ad_mean(sbi_tape *t, sbi_var a)
{
	GUARD();
	sbi_var y = push(t, OP_MEAN, 1, 1, a, -1, -1, 0);
	if (y < 0)
		return -1;
	node *na = N(a);
	size_t n = na->rows * na->cols;
	double s = 0;
	for (size_t i = 0; i < n; i++)
		s += na->v[i];
	N(y)->v[0] = (float)(s / (double)(n ? n : 1));
	return y;
}

/* sum: d/da_ij = dy_i.  lse: d/da_ij = dy_i softmax(a_i)_j.  mean: 1/n. */
static void
back_reduce(sbi_tape *t, node *y)
{
	node *a = N(y->a);
	size_t m = a->cols;
	grad_add(a);
	if (y->op == OP_MEAN) {
		float g = y->g[0] / (float)(a->rows * m);
		for (size_t i = 0; i < a->rows * m; i++)
			a->g[i] += g;
		return;
	}
	for (size_t i = 0; i < a->rows; i++)
		for (size_t j = 0; j < m; j++)
			a->g[i * m + j] += y->op == OP_SUMROWS ? y->g[i]
							       : y->g[i] * expf(a->v[i * m + j] - y->v[i]);
}

/* ---- rational-quadratic spline ---- */

#define RQS_MAX_BINS 64
#define MIN_BIN 1e-3f
#define MIN_DERIV 1e-3f

/* Knots and derivatives of one element's spline, from its 3K-1 params;
 * d[] holds only the two knots of the bin passed to bin_derivs. */
typedef struct spline {
	float xk[RQS_MAX_BINS + 1], yk[RQS_MAX_BINS + 1], d[RQS_MAX_BINS + 1];
	float sw[RQS_MAX_BINS], sh[RQS_MAX_BINS]; /* softmaxes (for gradients) */
} spline;

static void
softmax(const float *u, size_t K, float *out)
{
	float mx = -INFINITY, s = 0;
	for (size_t i = 0; i < K; i++)
		mx = u[i] > mx ? u[i] : mx;
	for (size_t i = 0; i < K; i++)
		s += out[i] = expf(u[i] - mx);
	for (size_t i = 0; i < K; i++)
		out[i] /= s;
}

/* Knots: x_0 = -B, x_j = -B + 2B sum_{i<j} w_i, x_K = B with
 * w = MIN_BIN + (1 - MIN_BIN K) softmax(u); the same for heights. */
static void
make_spline(const float *p, size_t K, float B, spline *s)
{
	softmax(p, K, s->sw);
	softmax(p + K, K, s->sh);
	float cw = 0, ch = 0, scale = 1 - MIN_BIN * (float)K;
	s->xk[0] = s->yk[0] = -B;
	for (size_t i = 1; i < K; i++) {
		cw += MIN_BIN + scale * s->sw[i - 1];
		ch += MIN_BIN + scale * s->sh[i - 1];
		s->xk[i] = -B + 2 * B * cw;
		s->yk[i] = -B + 2 * B * ch;
	}
	s->xk[K] = s->yk[K] = B;
}

/* The derivatives at the two knots of bin k, the only ones an element
 * uses: interior knot i has MIN_DERIV + softplus(p[2K + i - 1]); the
 * boundary knots have 1 so the spline joins its identity tails smoothly.
 * (Computing all K - 1 was a tenth of NSF sampling.) */
static void
bin_derivs(const float *p, size_t K, size_t k, spline *s)
{
	for (size_t i = k; i <= k + 1; i++)
		s->d[i] = i == 0 || i == K ? 1 : MIN_DERIV + softplus(p[2 * K + i - 1]);
}

static size_t
find_bin(const float *knots, size_t K, float v)
{
	size_t k = 0;
	while (k + 1 < K && v >= knots[k + 1])
		k++;
	return k;
}

/* Local partial derivatives of y and L = log dy/dx with respect to the
 * spline's local quantities (Durkan et al. 2019, eqs. 4 and 5):
 *   xi = (x - x_k)/W, s = H/W, t = xi(1-xi), A = s xi^2 + d0 t,
 *   den = s + (d1 + d0 - 2s) t,  y = y_k + H A / den,
 *   Bq = d1 xi^2 + 2 s t + d0 (1-xi)^2,  L = 2 log s + log Bq - 2 log den. */
typedef struct rq_local {
	float y, L;
	float dy_xi, dy_s, dy_H, dy_d0, dy_d1;
	float dL_xi, dL_s, dL_d0, dL_d1;
	float xi, s, W;
} rq_local;

static void
rq_eval(const spline *sp, size_t k, float x, rq_local *r)
{
	float W = sp->xk[k + 1] - sp->xk[k], H = sp->yk[k + 1] - sp->yk[k];
	float d0 = sp->d[k], d1 = sp->d[k + 1];
	float xi = (x - sp->xk[k]) / W, s = H / W, t = xi * (1 - xi);
	float A = s * xi * xi + d0 * t, c = d1 + d0 - 2 * s, den = s + c * t;
	float Bq = d1 * xi * xi + 2 * s * t + d0 * (1 - xi) * (1 - xi);
	float den2 = den * den, dt = 1 - 2 * xi;
	r->xi = xi, r->s = s, r->W = W;
	r->y = sp->yk[k] + H * A / den;
	r->L = 2 * logf(s) + logf(Bq) - 2 * logf(den);
	float dA_xi = 2 * s * xi + d0 * dt, dden_xi = c * dt;
	r->dy_xi = H * (dA_xi * den - A * dden_xi) / den2;
	r->dy_s = H * (xi * xi * den - A * (1 - 2 * t)) / den2;
	r->dy_H = A / den;
	r->dy_d0 = H * t * (den - A) / den2;
	r->dy_d1 = -H * A * t / den2;
	float dB_xi = 2 * d1 * xi + 2 * s * dt - 2 * d0 * (1 - xi);
	r->dL_xi = dB_xi / Bq - 2 * dden_xi / den;
	r->dL_s = 2 / s + 2 * t / Bq - 2 * (1 - 2 * t) / den;
	r->dL_d0 = (1 - xi) * (1 - xi) / Bq - 2 * t / den;
	r->dL_d1 = xi * xi / Bq - 2 * t / den;
}

/* Inverse: solve a xi^2 + b xi + c = 0 for the bin holding y. */
static float
rq_invert(const float *p, spline *sp, size_t K, float y, float *L)
{
	size_t k = find_bin(sp->yk, K, y);
	bin_derivs(p, K, k, sp);
	float W = sp->xk[k + 1] - sp->xk[k], H = sp->yk[k + 1] - sp->yk[k];
	float d0 = sp->d[k], d1 = sp->d[k + 1], s = H / W, dy = y - sp->yk[k];
	float a = H * (s - d0) + dy * (d1 + d0 - 2 * s);
	float b = H * d0 - dy * (d1 + d0 - 2 * s);
	float c = -s * dy;
	float disc = b * b - 4 * a * c;
	float xi = 2 * c / (-b - sqrtf(disc > 0 ? disc : 0));
	float x = sp->xk[k] + xi * W;
	rq_local r;
	rq_eval(sp, k, x, &r);
	*L = -r.L;
	return x;
}

void
sbi_ad_rqs(sbi_tape *t, sbi_var x, sbi_var params, size_t K, float bound, int inverse,
    sbi_var *y, sbi_var *logdet)
{
	*y = *logdet = -1;
	if (t->failed)
		return;
	size_t n = N(x)->rows, d = N(x)->cols, P = 3 * K - 1;
	SBI_ASSERT(K >= 2 && K <= RQS_MAX_BINS && N(params)->cols == d * P && N(params)->rows == n);
	sbi_var vy = push(t, OP_RQS, n, d, inverse ? -1 : x, inverse ? -1 : params, -1, 0);
	if (vy < 0)
		return;
	sbi_var vl = push(t, OP_RQS_LOGDET, n, d, vy, -1, -1, N(vy)->g != NULL);
	if (vl < 0)
		return;
	node *ny = N(vy), *nl = N(vl);
	ny->a = x, ny->b = params, ny->k = K, ny->s = bound, ny->inverse = inverse;
	nl->k = K;
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < d; j++) {
			float v = N(x)->v[i * d + j];
			float *out = &ny->v[i * d + j], *ld = &nl->v[i * d + j];
			if (v < -bound || v > bound) {
				*out = v;
				*ld = 0;
				continue;
			}
			spline sp;
			const float *p = N(params)->v + i * d * P + j * P;
			make_spline(p, K, bound, &sp);
			if (inverse) {
				*out = rq_invert(p, &sp, K, v, ld);
				continue;
			}
			size_t k = find_bin(sp.xk, K, v);
			bin_derivs(p, K, k, &sp);
			rq_local r;
			rq_eval(&sp, k, v, &r);
			*out = r.y;
			*ld = r.L;
		}
	*y = vy;
	*logdet = vl;
}

/* Chains local partials to x and to the unnormalized params:
 *   dxi/dx = 1/W, dxi/dx_k = (xi - 1)/W, dxi/dx_{k+1} = -xi/W,
 *   ds/dx_k = s/W, ds/dx_{k+1} = -s/W, ds/dH = 1/W, H = y_{k+1} - y_k;
 *   x_j = -B + 2B sum_{i<j} w_i (j = 1..K-1) so dL/dw_i = 2B sum_{j>i} dL/dx_j;
 *   w = MIN + (1 - MIN K) softmax(u): dL/du_j = c sm_j (dL/dw_j - sum_i sm_i dL/dw_i);
 *   d_k = MIN_DERIV + softplus(u_k): dd/du = sigmoid(u). */
static void
knot_grads_to_params(const float *gk, const float *sm, size_t K, float B, float *gu)
{
	float gw[RQS_MAX_BINS], acc = 0, dot = 0, c = 1 - MIN_BIN * (float)K;
	for (size_t i = K; i-- > 0;) {
		gw[i] = 2 * B * acc;        /* knots j > i, j <= K-1 */
		if (i >= 1)
			acc += gk[i];
	}
	for (size_t i = 0; i < K; i++)
		dot += sm[i] * gw[i];
	for (size_t i = 0; i < K; i++)
		gu[i] += c * sm[i] * (gw[i] - dot);
}

static void
back_rqs(sbi_tape *t, node *ny, node *nl)
{
	node *nx = N(ny->a), *np = N(ny->b);
	size_t n = ny->rows, d = ny->cols, K = ny->k, P = 3 * K - 1;
	float B = ny->s;
	/* y's and the log-det's gradients are complete here; unset is zero. */
	if (ny->g)
		grad_add(ny);
	grad_add(nl);
	if (nx->g)
		grad_add(nx);
	if (np->g)
		grad_add(np);
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < d; j++) {
			size_t e = i * d + j;
			float gy = ny->g ? ny->g[e] : 0, gL = nl->g ? nl->g[e] : 0, v = nx->v[e];
			if (v < -B || v > B) {
				if (nx->g)
					nx->g[e] += gy;
				continue;
			}
			spline sp;
			const float *p = np->v + i * d * P + j * P;
			make_spline(p, K, B, &sp);
			size_t k = find_bin(sp.xk, K, v);
			bin_derivs(p, K, k, &sp);
			rq_local r;
			rq_eval(&sp, k, v, &r);
			float G_xi = gy * r.dy_xi + gL * r.dL_xi, G_s = gy * r.dy_s + gL * r.dL_s;
			if (nx->g)
				nx->g[e] += G_xi / r.W;
			if (np->g == NULL)
				continue;
			float gxk[RQS_MAX_BINS + 1] = { 0 }, gyk[RQS_MAX_BINS + 1] = { 0 };
			gxk[k] += G_xi * (r.xi - 1) / r.W + G_s * r.s / r.W;
			gxk[k + 1] += -G_xi * r.xi / r.W - G_s * r.s / r.W;
			float gH = gy * r.dy_H + G_s / r.W;
			gyk[k + 1] += gH;
			gyk[k] += gy - gH;
			float *gp = np->g + i * d * P + j * P;
			knot_grads_to_params(gxk, sp.sw, K, B, gp);
			knot_grads_to_params(gyk, sp.sh, K, B, gp + K);
			float gd0 = gy * r.dy_d0 + gL * r.dL_d0, gd1 = gy * r.dy_d1 + gL * r.dL_d1;
			if (k >= 1)
				gp[2 * K + k - 1] += gd0 * sigmoid(p[2 * K + k - 1]);
			if (k + 1 <= K - 1)
				gp[2 * K + k] += gd1 * sigmoid(p[2 * K + k]);
		}
}

/* ---- backward ---- */

void
sbi_ad_backward(sbi_tape *t, sbi_var loss)
{
	if (t->failed || loss < 0 || N(loss)->g == NULL)
		return;
	/* Nodes past the loss get no gradient. */
	for (size_t v = t->nnodes; v-- > (size_t)loss + 1;)
		if (t->nodes[v].g)
			grad_add(&t->nodes[v]);
	grad_add(N(loss))[0] += 1.0f;
	for (sbi_var v = loss; v >= 0; v--) {
		node *y = N(v);
		if (y->g == NULL)
			continue;
		/* Nothing reached y (its gradient is zero): nothing to pass on.
		 * A spline's two outputs are handled together, at the log-det. */
		if (y->gfresh && y->op != OP_RQS_LOGDET) {
			grad_add(y);
			continue;
		}
		switch (y->op) {
		case OP_CONST:
		case OP_PARAM:
			break;
		case OP_LINEAR: back_linear(t, y); break;
		case OP_LINEAR_TANH: back_linear_tanh(t, y); break;
		case OP_MATMUL: back_matmul(t, y); break;
		case OP_ADD: case OP_SUB: case OP_MUL: back_binary(t, y); break;
		case OP_ADD_REPEAT: back_add_repeat(t, y); break;
		case OP_COLS: case OP_CONCAT: case OP_PERMUTE: case OP_RESHAPE: back_shape(t, y); break;
		case OP_SUMROWS: case OP_LSE: case OP_MEAN:
			if (N(y->a)->g)
				back_reduce(t, y);
			break;
		case OP_RQS:
			break; /* handled with its log-det sibling, which comes after it */
		case OP_RQS_LOGDET: back_rqs(t, N(y->a), y); break;
		default:
			if (N(y->a)->g)
				back_unary(t, y);
		}
	}
}
