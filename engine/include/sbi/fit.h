/* Fitting the neural estimators: each estimator's training set-up (the
 * standardization of its data, the batches, its loss) over the training
 * loop of train.h. No Lua: the bindings (lang/l_flow.c, l_classifier.c)
 * read the options and call these, and the engine tests call them too.
 * Each call has its own model, tape, RNG and scratch, so several may run in
 * threads at once. */
#ifndef SBI_FIT_H
#define SBI_FIT_H

#include <stddef.h>

#include "sbi/classifier.h"
#include "sbi/err.h"
#include "sbi/flow.h"
#include "sbi/prior.h"
#include "sbi/train.h"

/* Makes a flow of configuration cfg and fits q(y | c) to the n rows of y
 * (n x cfg->dim) and c (n x cfg->context; NULL when cfg->context is 0).
 * On success *out is the trained flow (caller frees, sbi_flow_free) and
 * rep is filled (caller frees, sbi_train_report_free); on failure *out is
 * NULL and rep holds nothing to free. */
int sbi_fit_flow(const sbi_flow_config *cfg, const sbi_train_opts *o, const double *y, const double *c,
    size_t n, sbi_flow **out, sbi_train_report *rep, sbi_err *err);

/* The optional parts of a flow fit; a zeroed struct is the plain fit of
 * sbi_fit_flow. Everything is borrowed for the duration of the call. */
typedef struct sbi_flow_fit_opts {
	/* K >= 2: the atomic loss of APT / SNPE-C (Greenberg et al. 2019). Each
	 * batch row i gets the atoms y_{(i+k) mod n}, k = 0..K-1 (K capped at the
	 * batch's n), l_ik = log q(y_{i+k} | c_i) - log p(y_{i+k}), and the loss
	 * is mean_i [logsumexp_k l_ik - l_i0], also for validation. It fits
	 * the posterior under the prior p whatever proposal drew the y rows.
	 * 0: maximum likelihood, -mean log q(y_i | c_i). Needs a context. */
	size_t atoms;
	/* With atoms: log p(y_i) of the n training rows (raw y), all finite
	 * (sbi_fit_log_prior computes them). */
	const double *log_prior;
	/* A warm start: training starts from a copy of this flow's weights and
	 * keeps its standardization (not refitted to the data); its
	 * configuration must equal cfg except for the seed (the copy keeps
	 * init's weights, permutations and recorded seed; o->seed still draws
	 * the split and batches). NULL: a fresh flow from cfg. */
	const sbi_flow *init;
} sbi_flow_fit_opts;

/* sbi_fit_flow with the options fo (NULL: none); errors name the option
 * ("atoms: ...", "init: the initial model's hidden is 16, the fit's 32"). */
int sbi_fit_flow_ex(const sbi_flow_config *cfg, const sbi_flow_fit_opts *fo, const sbi_train_opts *o,
    const double *y, const double *c, size_t n, sbi_flow **out, sbi_train_report *rep, sbi_err *err);

/* out[i] = log p(theta_i) for the n rows of theta (n x dim of p): the
 * log_prior of sbi_flow_fit_opts. Rows outside the support give -inf,
 * which sbi_fit_flow_ex rejects naming the row. */
void sbi_fit_log_prior(const sbi_prior *p, const double *theta, size_t n, double *out);

/* Makes a classifier of configuration cfg and fits it to the n pairs
 * (theta, x) (n x cfg->dtheta, n x cfg->dx) with the binary loss (atoms
 * <= 1) or the contrastive loss over `atoms` candidates. *out and rep as
 * for sbi_fit_flow (sbi_classifier_free). */
int sbi_fit_classifier(const sbi_classifier_config *cfg, size_t atoms, const sbi_train_opts *o,
    const double *theta, const double *x, size_t n, sbi_classifier **out, sbi_train_report *rep, sbi_err *err);

/* sbi_fit_classifier with a warm start: training starts from a copy of
 * init (borrowed; NULL: a fresh classifier from cfg), keeping its
 * standardization, as for sbi_flow_fit_opts.init. */
int sbi_fit_classifier_ex(const sbi_classifier_config *cfg, size_t atoms, const sbi_classifier *init,
    const sbi_train_opts *o, const double *theta, const double *x, size_t n, sbi_classifier **out,
    sbi_train_report *rep, sbi_err *err);

#endif
