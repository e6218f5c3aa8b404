/* Multilayer perceptrons fitted by mean-squared error: regressors y = f(x)
 * and autoencoders x -> code -> x.
 *
 * A network is a chain of `layers` affine layers, layer l mapping width[l]
 * to width[l + 1] units; every layer's output goes through the activation
 * except the last (a linear output) and, in an autoencoder, the code layer
 * (a linear bottleneck). Inputs and outputs are z-scored with the data the
 * network was fitted to, and the loss is the mean squared error of the
 * standardized outputs. An autoencoder is the same network with
 * width[0] = width[layers] and both z-scorings fitted to x: encode runs
 * layers [0, code), decode layers [code, layers).
 *
 * A linear regression is a network of one layer whose weights come from
 * least squares (sbi_mlp_fit_linear) instead of Adam; applying it is the
 * same code. Training is sbi_train (train.h); application goes through
 * the tape with gradients off, whose products are cblas_sgemm calls. */
#ifndef SBI_MLP_H
#define SBI_MLP_H

#include <stddef.h>
#include <stdint.h>

#include "sbi/ad.h"
#include "sbi/err.h"
#include "sbi/train.h"

#define SBI_MLP_MAX_LAYERS 32

typedef struct sbi_mlp_config {
	size_t layers;                        /* affine layers, 1..SBI_MLP_MAX_LAYERS */
	size_t width[SBI_MLP_MAX_LAYERS + 1]; /* units: width[0] inputs, width[layers] outputs */
	size_t code;  /* 0: a regressor; 1..layers-1: the layer whose (linear) output is an autoencoder's code */
	int act;      /* sbi_act (act.h) of the hidden layers */
	uint64_t seed; /* the initial weights' stream */
} sbi_mlp_config;

typedef struct sbi_mlp sbi_mlp;

/* A network of configuration cfg with PyTorch's default initial weights
 * drawn from cfg->seed's stream (caller frees, sbi_mlp_free); NULL with
 * err set on a bad configuration or out of memory. */
sbi_mlp *sbi_mlp_alloc(const sbi_mlp_config *cfg, sbi_err *err);
void sbi_mlp_free(sbi_mlp *m); /* NULL is fine */
const sbi_mlp_config *sbi_mlp_config_of(const sbi_mlp *m);
sbi_param **sbi_mlp_params(sbi_mlp *m, size_t *n); /* borrowed */

/* Fixes the z-scorings from n rows of x and y (y NULL: an autoencoder's,
 * the outputs z-scored as x). */
void sbi_mlp_set_standardization(sbi_mlp *m, const double *x, const double *y, size_t n);
/* Standardized copies of n rows (either may be NULL). */
void sbi_mlp_standardize(const sbi_mlp *m, const double *x, const double *y, size_t n, float *xs, float *ys);

/* Layers [from, to) applied to the standardized rows h on the tape. */
sbi_var sbi_mlp_forward_std(sbi_mlp *m, sbi_tape *t, sbi_var h, size_t from, size_t to);
/* The mean squared error (1 x 1) of the network on standardized rows
 * xs (n x width[0]) against ys (n x width[layers]). */
sbi_var sbi_mlp_loss(sbi_mlp *m, sbi_tape *t, const float *xs, const float *ys, size_t n);

/* Fits a network of configuration cfg to the n rows of x (n x width[0])
 * and y (n x width[layers]; NULL for an autoencoder, which reconstructs
 * x) with sbi_train's Adam, batches and early stopping. Every value must
 * be finite (else SBI_EINVAL naming "x" or "y" and the row). On success
 * *out is the fitted network (caller frees) and rep is filled (caller
 * frees, sbi_train_report_free); on failure *out is NULL and rep holds
 * nothing to free. */
int sbi_mlp_fit(const sbi_mlp_config *cfg, const sbi_train_opts *o, const double *x, const double *y, size_t n,
    sbi_mlp **out, sbi_train_report *rep, sbi_err *err);

/* The least-squares linear regression of y (n x dy) on x (n x dx), with
 * an intercept, as a one-layer network (caller frees): the standardized
 * data are centred, so the intercept is zero there and the weights are the
 * minimum-norm solution through GSL's SVD (collinear columns of x are
 * fine). Needs n >= 2 and finite values. */
int sbi_mlp_fit_linear(const double *x, const double *y, size_t n, size_t dx, size_t dy, sbi_mlp **out,
    sbi_err *err);

/* f(x) for n raw rows of x into out (n x width[layers]), in blocks of rows
 * on the tape t (borrowed; reset here). */
int sbi_mlp_apply(sbi_mlp *m, sbi_tape *t, const double *x, size_t n, double *out, sbi_err *err);
/* An autoencoder's code of n raw rows of x (n x width[code]), and the
 * reconstruction of n codes (n x width[layers], raw scale). SBI_EINVAL when
 * m is not an autoencoder. */
int sbi_mlp_encode(sbi_mlp *m, sbi_tape *t, const double *x, size_t n, double *out, sbi_err *err);
int sbi_mlp_decode(sbi_mlp *m, sbi_tape *t, const double *z, size_t n, double *out, sbi_err *err);

/* The Gaussian log-likelihood an emulator of the data's mean gives n raw
 * rows of theta: out[i] = -|W (x - f(theta_i))|^2 / 2 for the data row x
 * (width[layers] values) and the d x d whitening W (row-major: C^-1 =
 * W^T W, e.g. the inverse of C's Cholesky factor); log det C is left out.
 * The product by W is a cblas_dgemm. */
int sbi_mlp_gauss_loglik(sbi_mlp *m, sbi_tape *t, const double *theta, size_t n, const double *x, const double *W,
    double *out, sbi_err *err);

/* Serialization (format in mlp.c); save returns a buffer the caller frees
 * with sbi_free. Loading checks the checksum, the shapes and the layout. */
int sbi_mlp_save(const sbi_mlp *m, unsigned char **buf, size_t *len, sbi_err *err);
sbi_mlp *sbi_mlp_load(const unsigned char *buf, size_t len, sbi_err *err);

#endif
