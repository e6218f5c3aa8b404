/* Training loop for neural estimators: Adam with gradient-norm clipping,
 * minibatches, a held-out validation fraction, early stopping on the
 * validation loss with patience, and the best weights restored at the end.
 * Fully deterministic given the seed (the batch order comes from the
 * project's RNG streams; BLAS threading is set by the caller). */
#ifndef SBI_TRAIN_H
#define SBI_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "sbi/ad.h"
#include "sbi/err.h"

/* The caller sets every field: the engine has no defaults (the stdlib's,
 * stdlib/sbi/neural.lua, are the only ones). */
typedef struct sbi_train_opts {
	size_t batch;         /* minibatch size */
	size_t max_epochs;    /* hard cap */
	size_t patience;      /* epochs without validation improvement (0: 1) */
	double lr;            /* Adam learning rate */
	double val_fraction;  /* held out for validation */
	double clip;          /* max gradient norm, <= 0 disables */
	int nested_split;     /* 0: a seeded random split; 1: row i is held out when floor((i + 1) f) >
	                       * floor(i f), f = val_fraction: the split of the first n rows stays the split
	                       * of any longer data set with those rows first (sequential rounds) */
	uint64_t seed;
	int quiet;            /* no progress lines */
	const char *label;    /* for progress lines (borrowed) */
} sbi_train_opts;

/* What to train: params and a function that builds the mean loss of the
 * rows idx[0..n) on the tape (returns a 1 x 1 node); n never exceeds the
 * batch size, also when the validation loss is evaluated. */
typedef struct sbi_trainable {
	sbi_param **params;
	size_t nparams;
	sbi_var (*loss)(void *ud, sbi_tape *t, const size_t *idx, size_t n);
	void *ud;
} sbi_trainable;

typedef struct sbi_train_report {
	size_t epochs, best_epoch, steps, ntrain, nval;
	double best_val_loss, seconds;
	double *train_loss, *val_loss; /* per epoch (owned; free with sbi_train_report_free) */
} sbi_train_report;

/* Trains m on ndata rows. On success the parameters hold the weights with
 * the lowest validation loss. */
int sbi_train(const sbi_trainable *m, size_t ndata, const sbi_train_opts *o, sbi_train_report *rep,
    sbi_err *err);
void sbi_train_report_free(sbi_train_report *rep);

#endif
