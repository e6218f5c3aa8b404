/* Conditional normalizing flows q(y | c) for neural posterior and
 * likelihood estimation.
 *
 * A flow is a stack of autoregressive transforms, each a MADE (Germain et
 * al. 2015) conditioned on c, separated by fixed random permutations, over
 * a standard normal base:
 *   MAF (Papamakarios et al. 2017): z_i = y_i * scale_i + shift_i with
 *       scale = softplus(u) + 1e-3, (u, shift) = MADE(y_<i, c);
 *   NSF (Durkan et al. 2019): z_i = RQS(y_i; MADE(y_<i, c)), monotone
 *       rational-quadratic splines on [-bound, bound], identity outside.
 * Each MADE is: h0 = y W_in + c W_ctx + b_in, then `layers` blocks
 * h = act(h W + b), then the output layer; masks follow nflows' sequential
 * degrees, plus (when there is a context) hidden units of degree 0 that see
 * c only, so that every dimension's transform depends on c.
 * MDN (Bishop 1994), the same interface without transforms: an MLP of c
 * gives the weights, means and precision factors of a mixture of `bins`
 * full-covariance Gaussians (flow.c, "mixture density network"); it needs a
 * context and transforms = 1. y and c are z-scored with statistics fixed at fit time; log
 * densities are in the original units of y. */
#ifndef SBI_FLOW_H
#define SBI_FLOW_H

#include <stddef.h>
#include <stdint.h>
#include <gsl/gsl_rng.h>

#include "sbi/act.h"
#include "sbi/ad.h"
#include "sbi/embed.h"
#include "sbi/err.h"

/* Version of the model format (sbi_flow_save); part of training cache keys.
 * A flow with an embedding is written as version SBI_FLOW_FORMAT_EMBED
 * (the same layout with the embedding's configuration after the seed);
 * flows without one keep version 2, byte for byte. */
#define SBI_FLOW_FORMAT 2
#define SBI_FLOW_FORMAT_EMBED 3

typedef enum sbi_flow_kind { SBI_FLOW_MAF = 1, SBI_FLOW_NSF = 2, SBI_FLOW_MDN = 3 } sbi_flow_kind;

typedef struct sbi_flow_config {
	int kind;          /* sbi_flow_kind */
	size_t dim;        /* dimension of y */
	size_t context;    /* dimension of c (0 for none) */
	size_t transforms; /* number of MADE transforms */
	size_t hidden;     /* hidden units per layer */
	size_t layers;     /* hidden blocks per MADE */
	size_t bins;       /* NSF spline bins; MDN components */
	double bound;      /* NSF tail bound */
	int act;           /* sbi_act */
	uint64_t seed;     /* initial weights and permutations */
	/* embed.out > 0: the context is e(c), an embedding network (embed.h)
	 * of the z-scored c trained with the flow; `context` stays the
	 * dimension of the raw c. Zeroed: no embedding. */
	sbi_embed_config embed;
} sbi_flow_config;

typedef struct sbi_flow sbi_flow;

/* A freshly initialized flow; NULL with err set on a bad config or OOM. */
sbi_flow *sbi_flow_alloc(const sbi_flow_config *cfg, sbi_err *err);
void sbi_flow_free(sbi_flow *f); /* NULL is fine */
const sbi_flow_config *sbi_flow_config_of(const sbi_flow *f);

/* Trainable parameters (owned by the flow): the flow's, then its
 * embedding's. */
sbi_param **sbi_flow_params(sbi_flow *f, size_t *n);

/* Sets the z-scoring of y and c from data (n rows, row-major doubles);
 * columns with zero spread get scale 1. */
void sbi_flow_set_standardization(sbi_flow *f, const double *y, const double *c, size_t n);

/* Standardizes rows into float buffers (n x dim, n x context). */
void sbi_flow_standardize(const sbi_flow *f, const double *y, const double *c, size_t n, float *ys, float *cs);

/* log q(y | c) per row, on the tape, from standardized inputs (n x 1);
 * cs is the z-scored raw context (the embedding, if any, is applied here).
 * The constant -sum(log std_y) is included, so values are densities of the
 * original y. */
sbi_var sbi_flow_log_prob_std(sbi_flow *f, sbi_tape *t, sbi_var ys, sbi_var cs);
/* sbi_flow_log_prob_std where rows i*rep .. i*rep+rep-1 of ys share the
 * context row i of cs (rows(ys)/rep rows): the context's products (and
 * embedding) run once per context row. MAF and NSF only (not an MDN). */
sbi_var sbi_flow_log_prob_std_rep(sbi_flow *f, sbi_tape *t, sbi_var ys, sbi_var cs, size_t rep);

/* log q(y_i | c_i) for n raw rows; yrow = 1 (crow = 1) means y (c) is one
 * row used for every i. out has n entries. */
int sbi_flow_log_prob(sbi_flow *f, sbi_tape *t, const double *y, int yrow, const double *c, int crow,
    size_t n, double *out, sbi_err *err);

/* n samples of y given one context row c (raw), into out (n x dim), drawing
 * the base noise from r. */
int sbi_flow_sample(sbi_flow *f, sbi_tape *t, const double *c, size_t n, gsl_rng *r, double *out, sbi_err *err);

/* Serialization: a self-describing little-endian blob (format in flow.c).
 * save returns a new buffer (caller frees with sbi_free). */
int sbi_flow_save(const sbi_flow *f, unsigned char **buf, size_t *len, sbi_err *err);
sbi_flow *sbi_flow_load(const unsigned char *buf, size_t len, sbi_err *err);

#endif
