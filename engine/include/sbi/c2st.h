/* Classifier two-sample test (C2ST) as the sbibm benchmark defines it.
 *
 * Two sample sets a and b (rows = draws, same columns) are told apart by a
 * classifier; its k-fold cross-validated accuracy is the statistic: 0.5
 * when the sets are indistinguishable, 1 when they are fully separable.
 * The procedure is sbibm's (sbibm/metrics/c2st.py, and the reference
 * script tools/c2st.py): both sets z-scored with a's column means and
 * standard deviations (ddof 1), a labelled 0 and b labelled 1, shuffled
 * KFold, and in each fold scikit-learn's MLPClassifier with its defaults:
 * two relu hidden layers of 10 * dim units, a logistic output, Glorot
 * uniform initial weights, Adam (learning rate 1e-3, betas 0.9 and 0.999,
 * eps 1e-8) on minibatches of min(200, n), L2 penalty 1e-4, a new shuffle
 * every epoch, stopped when the training loss has not improved by 1e-4 for
 * more than 10 epochs or after max_iter epochs; a test point is b when
 * its probability exceeds 0.5.
 *
 * The random numbers are numpy's: a MT19937 stream seeded as
 * numpy.random.RandomState(seed), used as scikit-learn uses it (the folds
 * from one stream, each fold's initial weights and epoch shuffles from a
 * fresh stream), so the same seed gives the same folds and starting
 * weights as the reference script; arithmetic is float32, like
 * scikit-learn on float32 data. Bits are not promised to match numpy's (a
 * different summation order rounds differently and training then drifts);
 * the accuracies agree within 0.01 (tests/cli/t0190). The result is the
 * same for any number of threads: each fold's training is sequential and
 * owns its stream. */
#ifndef SBI_C2ST_H
#define SBI_C2ST_H

#include <stddef.h>
#include <stdint.h>

#include "sbi/err.h"
#include "sbi/mat.h"

typedef struct sbi_c2st_opts {
	size_t folds;     /* k of the k-fold cross-validation, >= 2 (5) */
	uint32_t seed;    /* numpy RandomState seed of folds and networks (1) */
	int z_score;      /* z-score both sets with a's statistics (1) */
	size_t max_iter;  /* epochs at most (10000, scikit-learn's sbibm setting) */
	size_t hidden;    /* units per hidden layer; 0 = 10 * columns (0) */
	size_t threads;   /* folds trained at once, >= 1; no effect on results (1) */
} sbi_c2st_opts;

/* Fills o with the defaults above. */
void sbi_c2st_defaults(sbi_c2st_opts *o);

/* The per-fold record, written by sbi_c2st when the caller passes one. */
typedef struct sbi_c2st_fold {
	double accuracy; /* on the fold's test rows */
	size_t epochs;   /* epochs trained */
	size_t ntest;    /* test rows */
} sbi_c2st_fold;

/* The C2ST accuracy of a against b into *acc (the mean of the folds'
 * accuracies, as sbibm reports it); folds, when not NULL, receives o->folds
 * records (caller-owned array). a and b are borrowed; both need the same
 * number of columns, finite values and at least o->folds rows together.
 * SBI_EINVAL with a message for bad input, SBI_ENOMEM. */
int sbi_c2st(const sbi_mat *a, const sbi_mat *b, const sbi_c2st_opts *o, double *acc,
	     sbi_c2st_fold *folds, sbi_err *err);

/* The fold (0 .. k-1) of each of n rows, as scikit-learn's
 * KFold(k, shuffle=True, random_state=seed) assigns test folds: fold[i]
 * for i < n (caller-owned array). SBI_EINVAL when k < 2 or k > n. */
int sbi_c2st_kfold(size_t n, size_t k, uint32_t seed, size_t *fold, sbi_err *err);

#endif
