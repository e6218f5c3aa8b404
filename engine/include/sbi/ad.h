/* Reverse-mode automatic differentiation over float32 matrices.
 *
 * A tape records operations as they run (define-by-run); sbi_ad_backward
 * then walks it in reverse and accumulates gradients. Every value is a
 * row-major rows x cols matrix of floats living in the tape's arena, which
 * is reset, not freed, between minibatches: after the first step the arena
 * has the right size and a training step allocates nothing (ggml-style).
 *
 * Trainable parameters (sbi_param) live outside the tape; their gradients
 * accumulate into sbi_param.g. Matrix products go through cblas_sgemm.
 * Each backward rule has its derivation next to it in ad.c, and every
 * operation's gradient is checked against finite differences in
 * tests/engine/test_ad.c. */
#ifndef SBI_AD_H
#define SBI_AD_H

#include <stddef.h>

#include "sbi/blob.h"

/* For the training loops' hot elementwise functions (ad.c, train.c): AVX-512
 * and AVX2 copies chosen when the program loads, since the build targets
 * baseline x86-64 and these loops ran 2-4x faster wider. -ffp-contract=off
 * (engine/meson.build) makes every copy round alike, so results do not
 * depend on the machine's vector width. */
#ifndef SBI_AD_VECTOR /* -DSBI_AD_VECTOR= builds one baseline copy */
#if defined(__x86_64__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define SBI_AD_VECTOR __attribute__((target_clones("avx512f", "avx2", "default")))
#endif
#endif
#endif
#ifndef SBI_AD_VECTOR
#define SBI_AD_VECTOR
#endif

/* A trainable matrix with its gradient and Adam moments (all owned). */
typedef struct sbi_param {
	size_t rows, cols;
	float *w, *g, *m, *v;
	const float *mask; /* optional rows x cols 0/1 mask (not owned): masked
	                      entries stay zero in w and get no gradient */
} sbi_param;

/* Allocates a zeroed parameter; NULL when out of memory. */
sbi_param *sbi_param_alloc(size_t rows, size_t cols);
void sbi_param_free(sbi_param *p); /* NULL is fine */

/* The weights of a model file: u64 n, then per parameter u64 rows, u64 cols
 * and rows x cols f32 values. */
void sbi_params_write(sbi_blobw *w, sbi_param *const *p, size_t n);
/* Reads what sbi_params_write wrote into n parameters of the expected
 * shapes, stopping at the first read past the end (then r->bad is set):
 * returns 0, or -1 when the count differs (*at = n) or parameter *at has
 * another shape. */
int sbi_params_read(sbi_blobr *r, sbi_param *const *p, size_t n, size_t *at);

typedef struct sbi_tape sbi_tape;

/* Node handles are indices into the tape; -1 is "no node". */
typedef int sbi_var;

sbi_tape *sbi_tape_alloc(void); /* NULL when out of memory */
void sbi_tape_free(sbi_tape *t);  /* NULL is fine */
/* Forgets every node, keeping the arena for the next pass. */
void sbi_tape_reset(sbi_tape *t);
/* With on = 0 the tape records no gradients (inference: no gradient
 * buffers are allocated or cleared, parameters are read only); 1 by default. */
void sbi_tape_set_grad(sbi_tape *t, int on);
/* With on = 1 the tape may take faster paths whose float results differ
 * from the default ones in the last bits (products' input gradients
 * through a transposed weight; vectorized exp and log in softplus, log and
 * softplus's gradient, accurate to a few ulp): SNPE's atomic loss trains
 * on one. 0 by default, so every other result is unchanged; reset keeps it. */
void sbi_tape_set_fast(sbi_tape *t, int on);
/* 1 when an allocation failed since the last reset; values are then garbage
 * and the caller must report out of memory. */
int sbi_tape_failed(const sbi_tape *t);

/* Leaves: a constant copy of data (no gradient) and a parameter. */
sbi_var sbi_ad_const(sbi_tape *t, const float *data, size_t rows, size_t cols);
sbi_var sbi_ad_param(sbi_tape *t, sbi_param *p);

/* y = x W (+ b): x n x k, W k x m, b 1 x m (or -1); W's mask applies. */
sbi_var sbi_ad_linear(sbi_tape *t, sbi_var x, sbi_var w, sbi_var b);
/* y = x W + x2 W2 (+ b) in one node, x2 n x k2 and W2 k2 x m (x2 = -1:
 * sbi_ad_linear): a MADE's first layer, without a sum node's passes. */
sbi_var sbi_ad_linear2(sbi_tape *t, sbi_var x, sbi_var w, sbi_var x2, sbi_var w2, sbi_var b);
/* tanh(x W + b) in one node (b required): the values of
 * sbi_ad_tanh(sbi_ad_linear(...)) with fewer passes over memory; after
 * sbi_ad_backward its gradient buffer holds that of x W + b. */
sbi_var sbi_ad_linear_tanh(sbi_tape *t, sbi_var x, sbi_var w, sbi_var b);
/* a @ b for two tape values. */
sbi_var sbi_ad_matmul(sbi_tape *t, sbi_var a, sbi_var b);

/* Elementwise; b may also be a 1 x cols row, broadcast over rows. */
sbi_var sbi_ad_add(sbi_tape *t, sbi_var a, sbi_var b);
/* a + b with row i of b added to rows i*rep .. i*rep+rep-1 of a (b has
 * rows(a)/rep rows): one context row shared by several rows. */
sbi_var sbi_ad_add_repeat(sbi_tape *t, sbi_var a, sbi_var b, size_t rep);
sbi_var sbi_ad_sub(sbi_tape *t, sbi_var a, sbi_var b);
sbi_var sbi_ad_mul(sbi_tape *t, sbi_var a, sbi_var b);
sbi_var sbi_ad_scale(sbi_tape *t, sbi_var a, float s);     /* s a */
sbi_var sbi_ad_add_scalar(sbi_tape *t, sbi_var a, float s); /* a + s */

/* Elementwise nonlinearities. */
sbi_var sbi_ad_relu(sbi_tape *t, sbi_var a);
sbi_var sbi_ad_tanh(sbi_tape *t, sbi_var a);
sbi_var sbi_ad_elu(sbi_tape *t, sbi_var a);
sbi_var sbi_ad_silu(sbi_tape *t, sbi_var a);
sbi_var sbi_ad_softplus(sbi_tape *t, sbi_var a);
sbi_var sbi_ad_log_sigmoid(sbi_tape *t, sbi_var a);
sbi_var sbi_ad_exp(sbi_tape *t, sbi_var a);
sbi_var sbi_ad_log(sbi_tape *t, sbi_var a);
sbi_var sbi_ad_square(sbi_tape *t, sbi_var a);

/* Columns [start, start + count) of a. */
sbi_var sbi_ad_cols(sbi_tape *t, sbi_var a, size_t start, size_t count);
/* [a | b]: columns of a then of b (same rows). */
sbi_var sbi_ad_concat(sbi_tape *t, sbi_var a, sbi_var b);
/* Columns of a reordered: out[:, j] = a[:, perm[j]] (perm not owned, must
 * outlive the tape pass). */
sbi_var sbi_ad_permute_cols(sbi_tape *t, sbi_var a, const int *perm);

/* The same values read as rows x cols (rows * cols must be unchanged). */
sbi_var sbi_ad_reshape(sbi_tape *t, sbi_var a, size_t rows, size_t cols);

/* Reductions: per-row sum and log-sum-exp (n x 1), mean of everything (1 x 1). */
sbi_var sbi_ad_sum_rows(sbi_tape *t, sbi_var a);
sbi_var sbi_ad_logsumexp_rows(sbi_tape *t, sbi_var a);
sbi_var sbi_ad_mean(sbi_tape *t, sbi_var a);

/* Monotone rational-quadratic spline (Durkan et al. 2019), elementwise on
 * x (n x d), with linear tails outside [-bound, bound]. params is
 * n x (d * (3K - 1)): for dimension j, columns [j*(3K-1), (j+1)*(3K-1))
 * hold K unnormalized widths, K unnormalized heights and K-1 unconstrained
 * interior derivatives. Sets *y (n x d) and *logdet (n x d, log dy/dx).
 * inverse = 1 computes x from y instead (then logdet is log dx/dy... see
 * ad.c); the inverse has no gradient. */
void sbi_ad_rqs(sbi_tape *t, sbi_var x, sbi_var params, size_t K, float bound, int inverse,
    sbi_var *y, sbi_var *logdet);

/* Value and gradient buffers of a node (rows x cols); a gradient is
 * defined once sbi_ad_backward has run (it is zero where none flowed). */
float *sbi_ad_value(sbi_tape *t, sbi_var v);
float *sbi_ad_grad(sbi_tape *t, sbi_var v);
size_t sbi_ad_rows(const sbi_tape *t, sbi_var v);
size_t sbi_ad_cols_of(const sbi_tape *t, sbi_var v);

/* Back-propagates from loss (a 1 x 1 node): gradients of parameters
 * accumulate into their sbi_param.g. */
void sbi_ad_backward(sbi_tape *t, sbi_var loss);

#endif
