/* Internal declarations shared by the bindings of the neural estimators:
 * l_train.c (options and results of training, loaded models), l_train_jobs.c
 * (training in threads or over the MPI ranks), l_flow.c (sbi.Flow),
 * l_classifier.c (sbi.Classifier) and l_mcmc.c (core.mcmc). */
#ifndef SBI_LNN_H
#define SBI_LNN_H

#include "lsbi.h"
#include "sbi/classifier.h"
#include "sbi/flow.h"
#include "sbi/train.h"

#define SBI_MT_FLOW "sbi.Flow"
#define SBI_MT_CLASSIFIER "sbi.Classifier"

/* A loaded model userdata (sbi.Flow, sbi.Classifier): owns the model and
 * a tape for evaluating it. Closed (<close>), it is unusable, but both are
 * freed only by __gc: core.mcmc, which calls back into Lua, may still be
 * using them. */
typedef struct l_model {
	void *m; /* an sbi_flow or an sbi_classifier, as its metatable says */
	sbi_tape *t;
	int released;
} l_model;

/* What differs between the kinds of loaded model (l_flow.c, l_classifier.c);
 * l_train.c does the rest. */
typedef struct l_model_kind {
	const char *tname;    /* SBI_MT_FLOW, ... */
	const char *released; /* the argument error for a closed one ("released flow") */
	void *(*load)(const unsigned char *blob, size_t len, sbi_err *err); /* caller frees */
	void (*free)(void *m);                                            /* NULL is fine */
	/* Pushes what __tostring says of an open model. [..] -> [.., s] */
	void (*push_name)(lua_State *L, const void *m);
} l_model_kind;

extern const l_model_kind sbi__flow_kind;       /* l_flow.c */
extern const l_model_kind sbi__classifier_kind; /* l_classifier.c */

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
/* An optional model option (a string, the model file of a trained model):
 * NULL when nil, leaving nothing; else the string, left on the stack.
 * [..] -> [..] or [.., v] */
const char *sbi__spec_model(lua_State *L, int spec, const char *k, size_t *len);
/* Raises unless the matrix option k has at most SBI_MAX_DIM columns. */
void sbi__check_cols(lua_State *L, const sbi_mat *m, const char *k);
/* The sbi_act of an activation name; raises on an unknown name. */
int sbi__activation(lua_State *L, const char *name);

/* The optional option 'embedding' = { out = k, hidden = { widths },
 * activation = name } into e (zeroed, no embedding, when nil). [..] -> [..] */
void sbi__spec_embed(lua_State *L, int spec, sbi_embed_config *e);

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

/* ---- l_train_jobs.c: training in threads or over the MPI ranks ---- */

/* The first member of every kind's job: what its training leaves. */
typedef struct l_train_job {
	l_trained out; /* owned by the jobs' box */
	sbi_err err;
	int rc;
} l_train_job;

/* A kind of model trained as jobs (l_flow.c, l_classifier.c): read from
 * a Lua spec, then trained without touching Lua, so that several train at
 * once in threads or on MPI ranks. */
typedef struct l_train_kind {
	const char *name; /* "flow": in messages */
	size_t size;      /* of one job, which begins with an l_train_job */
	/* Reads a zeroed job from the table at index spec; raises on bad
	 * options. [..] -> [.., values kept alive while the job is used] */
	void (*read)(lua_State *L, int spec, void *job);
	/* Trains the job into its l_train_job: no Lua calls, no shared state. */
	void (*run)(void *job);
} l_train_kind;

/* core.X_train(spec) -> model, report.
 * [spec] -> [spec, box, values read, model, report] */
int sbi__train_one(lua_State *L, const l_train_kind *k);
/* core.X_train_each({ spec, ... }) -> { { model =, report = }, ... }: trains
 * min(--jobs, #specs) at a time in threads, or over the MPI ranks; each
 * exactly as by sbi__train_one, so results depend on neither.
 * [specs] -> [specs, box, values read, list] */
int sbi__train_each(lua_State *L, const l_train_kind *k);

/* ---- l_train.c: loaded models ---- */

/* The open model of kind k at idx; raises otherwise. [..] -> [..] */
l_model *sbi__check_model(lua_State *L, int idx, const l_model_kind *k);

/* core.flow_load and the like: a new model of kind k from the model file
 * (a string) at index 1. [blob] -> [blob, model] */
int sbi__load_model(lua_State *L, const l_model_kind *k);

/* Registers the type of kind k: the shared __gc, __close and __tostring,
 * and methods as __index. [..] -> [..] */
void sbi__new_model_type(lua_State *L, const l_model_kind *k, const luaL_Reg *methods);

#endif
