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

typedef struct sbi_train_opts {
	size_t batch;         /* minibatch size (default 200) */
	size_t max_epochs;    /* hard cap (default 2000) */
	size_t patience;      /* epochs without validation improvement (default 20) */
	double lr;            /* Adam learning rate (default 5e-4) */
	double val_fraction;  /* held out for validation (default 0.1) */
	double clip;          /* max gradient norm, <= 0 disables (default 5) */
	uint64_t seed;
	int quiet;            /* no progress lines */
	const char *label;    /* for progress lines */
} sbi_train_opts;

/* Fills the defaults above. */
void sbi_train_opts_default(sbi_train_opts *o);

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
