/* Internal declarations shared by the bindings of the neural estimators:
 * l_train.c (options and results of training), l_flow.c (sbi.Flow),
 * l_classifier.c (sbi.Classifier) and l_mcmc.c (core.mcmc). */
#ifndef SBI_LNN_H
#define SBI_LNN_H

#include "lsbi.h"
#include "sbi/classifier.h"
#include "sbi/flow.h"
#include "sbi/train.h"

#define SBI_MT_FLOW "sbi.Flow"
#define SBI_MT_CLASSIFIER "sbi.Classifier"

/* A Flow userdata: owns the flow and a tape for evaluating it. Closed
 * (<close>), it is unusable, but both are freed only by __gc: core.mcmc,
 * which calls back into Lua, may still be using them. */
typedef struct l_flow {
	sbi_flow *f;
	sbi_tape *t;
	int released;
} l_flow;

/* A Classifier userdata, like l_flow. */
typedef struct l_classifier {
	sbi_classifier *c;
	sbi_tape *t;
	int released;
} l_classifier;

/* l_flow.c, l_classifier.c: the open userdata at idx; raises otherwise. */
l_flow *sbi__check_flow(lua_State *L, int idx);
l_classifier *sbi__check_classifier(lua_State *L, int idx);

/* ---- l_train.c ---- */

/* Upper bounds of the integer options: far beyond any real use, and low
 * enough that the sizes computed from them cannot overflow. */
#define SBI_MAX_COUNT ((lua_Integer)1 << 30) /* samples, epochs, batch, warmup */
#define SBI_MAX_SHAPE ((lua_Integer)1 << 16) /* hidden units, chains, thinning */
#define SBI_MAX_SMALL ((lua_Integer)1 << 10) /* layers, transforms, bins, atoms */
#define SBI_MAX_DIM ((size_t)1 << 20)        /* columns of training data */

/* Sets OpenBLAS to one thread (see l_train.c). */
void sbi__blas_threads(void);

/* Required option k of the spec table at index spec: raises naming k when
 * it is missing or of the wrong type (the stdlib fills every default).
 * An integer must be in min..max. [..] -> [..] */
lua_Integer sbi__spec_int(lua_State *L, int spec, const char *k, lua_Integer min, lua_Integer max);
double sbi__spec_num(lua_State *L, int spec, const char *k);
int sbi__spec_bool(lua_State *L, int spec, const char *k);
/* spec_str and spec_mat leave the value on the stack, which keeps it alive
 * while it is used: the spec does not (an __index or a callback may take
 * it out of the spec, and the collector then free it). [..] -> [.., v] */
const char *sbi__spec_str(lua_State *L, int spec, const char *k);
/* A matrix option; required or nil (NULL). */
sbi_mat *sbi__spec_mat(lua_State *L, int spec, const char *k, int required);
/* Raises unless the matrix option k has at most SBI_MAX_DIM columns. */
void sbi__check_cols(lua_State *L, const sbi_mat *m, const char *k);
/* The sbi_act of an activation name; raises on an unknown name. */
int sbi__activation(lua_State *L, const char *name);

/* The training options common to every estimator, all required (seed:
 * the model's). Leaves the label on the stack. [..] -> [.., label] */
void sbi__train_opts(lua_State *L, int spec, sbi_train_opts *o, uint64_t seed);

/* A trained model: owned by a box (sbi__push_trained_box, or the jobs of
 * l_flow.c) until that is collected or closed, so no error leaks it. */
typedef struct l_trained {
	unsigned char *blob; /* the model file (owned) */
	size_t len;
	sbi_train_report rep; /* owned */
} l_trained;

/* Frees what tr holds and empties it; may run twice. */
void sbi__trained_free(l_trained *tr);

/* A new, empty box owning one l_trained. [..] -> [.., box] */
l_trained *sbi__push_trained_box(lua_State *L);

/* Pushes the model (a string) and the report of tr; tr keeps what it owns.
 * [..] -> [.., model, report] */
void sbi__push_trained(lua_State *L, const l_trained *tr);

#endif
