/* Ratio classifiers for neural ratio estimation (NRE).
 *
 * A classifier maps a pair (theta, x) to a logit f(theta, x) that
 * estimates log p(x | theta) / p(x) up to a constant (Hermans et al. 2020;
 * Durkan et al. 2020). The network is an MLP on [theta, x] (both z-scored
 * at fit time): h = act(W_in [theta, x] + b), then `layers` blocks, each
 * h = act(h W + b) or, when residual, h = h + act(h W + b), then a linear
 * output to one logit. With an embedding, x is replaced by e(x) (embed.h).
 *
 * Losses, on a minibatch of n joint pairs (theta_i, x_i):
 *   binary (NRE-A):      -mean log sigma(f(theta_i, x_i))
 *                        -mean log sigma(-f(theta_{i+1}, x_i)) (shifted pairs are
 *                        draws from the product of marginals);
 *   contrastive (NRE-B): for each x_i, atoms theta_i (true) and K-1 others
 *                        from the batch: mean(logsumexp_k f - f_true). */
#ifndef SBI_CLASSIFIER_H
#define SBI_CLASSIFIER_H

#include <stddef.h>
#include <stdint.h>

#include "sbi/act.h"
#include "sbi/ad.h"
#include "sbi/embed.h"
#include "sbi/err.h"

typedef struct sbi_classifier_config {
	size_t dtheta, dx;
	size_t hidden;  /* units per layer */
	size_t layers;  /* hidden blocks after the first layer */
	int residual;   /* 1: residual blocks */
	int act;        /* sbi_act (act.h) */
	uint64_t seed;
	/* embed.out > 0: the MLP sees [theta, e(x)], e an embedding network
	 * (embed.h) of the z-scored x trained with the classifier; dx stays
	 * the dimension of the raw x. Zeroed: no embedding. */
	sbi_embed_config embed;
} sbi_classifier_config;

typedef struct sbi_classifier sbi_classifier;

sbi_classifier *sbi_classifier_alloc(const sbi_classifier_config *cfg, sbi_err *err);
void sbi_classifier_free(sbi_classifier *c);
const sbi_classifier_config *sbi_classifier_config_of(const sbi_classifier *c);
sbi_param **sbi_classifier_params(sbi_classifier *c, size_t *n);

/* Fixes the z-scoring from data (n rows each) and standardizes rows into
 * float buffers (either input may be NULL). */
void sbi_classifier_set_standardization(sbi_classifier *c, const double *theta, const double *x, size_t n);
void sbi_classifier_standardize(const sbi_classifier *c, const double *theta, const double *x, size_t n,
    float *ts, float *xs);

/* Logits (n x 1) of standardized pairs on the tape. */
sbi_var sbi_classifier_logits_std(sbi_classifier *c, sbi_tape *t, sbi_var ts, sbi_var xs);

/* The minibatch loss (1 x 1) over standardized rows ts, xs (n x d):
 * atoms <= 1 gives the binary loss, atoms = K >= 2 the contrastive one. */
sbi_var sbi_classifier_loss(sbi_classifier *c, sbi_tape *t, const float *ts, const float *xs, size_t n,
    size_t atoms, float *scratch);

/* log ratio for n raw theta rows against one raw x row. */
int sbi_classifier_log_ratio(sbi_classifier *c, sbi_tape *t, const double *theta, const double *x, size_t n,
    double *out, sbi_err *err);

/* Serialization (format in classifier.c); save returns a buffer the caller
 * frees with sbi_free. */
int sbi_classifier_save(const sbi_classifier *c, unsigned char **buf, size_t *len, sbi_err *err);
sbi_classifier *sbi_classifier_load(const unsigned char *buf, size_t len, sbi_err *err);

#endif
