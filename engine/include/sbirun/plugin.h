/* sbirun/plugin.h: the C ABI of sbirun simulator plugins (docs/simulators.md).
 *
 * A plugin is a shared library that exports one constant sbirun_plugin
 * (by default named "simulate"; sbi.simulator{ plugin = "libsim.so",
 * symbol = "NAME", dim = K }). The engine checks its abi field, then, in
 * each worker process, calls init once per chunk of simulations, simulate
 * on batches of rows of that chunk, and free_state at the chunk's end.
 *
 * Reproducibility: row i of a batch is one simulation; b->rng[i] is its
 * random stream, the same stream a Lua simulator gets as its rng argument
 * for that simulation, and the host functions below draw from it exactly
 * as the Lua methods of the same name do. Draw only from it (never from
 * rand(), time or a static generator) and results are independent of the
 * batch size, of --jobs and of the number of MPI ranks, and equal to a Lua
 * simulator's that makes the same draws.
 *
 * Versioning: SBIRUN_PLUGIN_ABI changes when a struct below changes
 * incompatibly; fields are only ever added at the ends of the structs
 * (size tells the engine how much of sbirun_plugin the plugin knows). The
 * engine refuses a plugin whose abi it does not support.
 *
 * This header needs only the C standard library; C++ can include it. */
#ifndef SBIRUN_PLUGIN_H
#define SBIRUN_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SBIRUN_PLUGIN_ABI 1

/* One simulation's random stream (opaque: owned by the engine). */
typedef struct sbirun_rng sbirun_rng;

/* The engine's random functions: each draws from r as the Lua method of the
 * same name does (docs/recipes.md#random-numbers). */
typedef struct sbirun_host {
	uint32_t abi;                                                /* the engine's SBIRUN_PLUGIN_ABI */
	double (*uniform)(sbirun_rng *r);                            /* [0, 1): rng:uniform() */
	double (*normal)(sbirun_rng *r, double mean, double sd);     /* rng:normal(mean, sd) */
	double (*lognormal)(sbirun_rng *r, double mu, double sigma); /* rng:lognormal(mu, sigma) */
	double (*exponential)(sbirun_rng *r, double rate);           /* rng:exponential(rate) */
	double (*gamma)(sbirun_rng *r, double shape, double scale);  /* rng:gamma(shape, scale) */
	double (*beta)(sbirun_rng *r, double a, double b);           /* rng:beta(a, b) */
	unsigned (*poisson)(sbirun_rng *r, double mean);             /* rng:poisson(mean) */
	unsigned (*binomial)(sbirun_rng *r, unsigned n, double p);   /* rng:binomial(n, p) */
	uint64_t (*bits)(sbirun_rng *r);                             /* 64 uniform random bits */
} sbirun_host;

/* One call's rows: n simulations, row-major. */
typedef struct sbirun_batch {
	size_t n;              /* rows in this batch (1 to the declared batch size) */
	size_t dtheta, dx;     /* parameters per row, data values per row (the declared dim) */
	const double *theta;   /* n x dtheta, read only */
	double *x;             /* n x dx, to fill; NaN on entry */
	sbirun_rng *const *rng; /* rng[i]: simulation i's stream */
	const sbirun_host *host;
	/* Reports that row i failed, with a message (copied; at most 255
	 * bytes kept). A failed row's x is ignored; the recipe's on_failure
	 * decides whether the run stops or drops it. Rows left with a NaN or
	 * an infinity fail too, without a message of the plugin's. */
	void (*fail)(struct sbirun_batch *b, size_t i, const char *message);
	void *engine; /* the engine's (do not touch) */
} sbirun_batch;

/* What the plugin exports (a const object under the symbol's name). */
typedef struct sbirun_plugin {
	uint32_t abi;  /* SBIRUN_PLUGIN_ABI of the header the plugin was built with */
	uint32_t size; /* sizeof(sbirun_plugin) of that header */
	/* Optional (NULL): makes the worker's state, passed to simulate and
	 * free_state, for dtheta parameters and dx values. Returns 0, or
	 * nonzero with a message in error (nerror bytes), which ends the run. */
	int (*init)(void **state, size_t dtheta, size_t dx, char *error, size_t nerror);
	/* Fills b->x. Returns 0; nonzero fails every row of the batch not
	 * already reported through b->fail. */
	int (*simulate)(void *state, sbirun_batch *b);
	/* Optional (NULL): frees what init made. */
	void (*free_state)(void *state);
} sbirun_plugin;

#if defined(__GNUC__) || defined(__clang__)
#define SBIRUN_EXPORT __attribute__((visibility("default")))
#else
#define SBIRUN_EXPORT
#endif

/* Defines the exported descriptor: SBIRUN_PLUGIN(simulate, my_init,
 * my_simulate, my_free) (init and free_state may be NULL). */
#define SBIRUN_PLUGIN(name, init_fn, simulate_fn, free_fn)                                              \
	SBIRUN_EXPORT extern const sbirun_plugin name;                                                       \
	const sbirun_plugin name = { SBIRUN_PLUGIN_ABI, (uint32_t)sizeof(sbirun_plugin), init_fn, simulate_fn, \
		free_fn }

#ifdef __cplusplus
}
#endif

#endif
