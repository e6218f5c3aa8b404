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
#include "sbi/train.h"

/* Makes a flow of configuration cfg and fits q(y | c) to the n rows of y
 * (n x cfg->dim) and c (n x cfg->context; NULL when cfg->context is 0).
 * On success *out is the trained flow (caller frees, sbi_flow_free) and
 * rep is filled (caller frees, sbi_train_report_free); on failure *out is
 * NULL and rep holds nothing to free. */
int sbi_fit_flow(const sbi_flow_config *cfg, const sbi_train_opts *o, const double *y, const double *c,
    size_t n, sbi_flow **out, sbi_train_report *rep, sbi_err *err);

/* Makes a classifier of configuration cfg and fits it to the n pairs
 * (theta, x) (n x cfg->dtheta, n x cfg->dx) with the binary loss (atoms
 * <= 1) or the contrastive loss over `atoms` candidates. *out and rep as
 * for sbi_fit_flow (sbi_classifier_free). */
int sbi_fit_classifier(const sbi_classifier_config *cfg, size_t atoms, const sbi_train_opts *o,
    const double *theta, const double *x, size_t n, sbi_classifier **out, sbi_train_report *rep, sbi_err *err);

#endif
