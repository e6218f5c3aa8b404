/* An example simulator plugin (docs/simulators.md): the conjugate Gaussian
 * model of gauss_native.lua, x_j = theta_j + 0.5 eps_j, eps_j ~ N(0, 1).
 *
 * It draws its noise from the engine's stream of each simulation with the
 * host's normal(), exactly as the Lua simulator's rng:normal(0, 0.5) does,
 * so with the same seed it gives bit for bit the Lua simulator's x.
 *
 * Build: meson builds it beside the recipe (build/recipes/examples/), or
 *   cc -O2 -shared -fPIC -I engine/include gauss_plugin.c -o libgauss_plugin.so */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "sbirun/plugin.h"

/* Per-worker state: here only the noise level, to show init and free. */
typedef struct gauss_state {
	double sigma;
} gauss_state;

static int
gauss_init(void **state, size_t dtheta, size_t dx, char *error, size_t nerror)
{
	if (dx != dtheta) {
		snprintf(error, nerror, "the model returns one value per parameter: dim must be %zu, not %zu", dtheta, dx);
		return 1;
	}
	gauss_state *s = malloc(sizeof *s);
	if (s == NULL) {
		snprintf(error, nerror, "out of memory");
		return 1;
	}
	s->sigma = 0.5;
	*state = s;
	return 0;
}

static int
gauss_simulate(void *state, sbirun_batch *b)
{
	const gauss_state *s = state;
	for (size_t i = 0; i < b->n; i++) {
		const double *theta = b->theta + i * b->dtheta;
		double *x = b->x + i * b->dx;
		if (!isfinite(theta[0])) { /* never with a proper prior: shows the per-row failure */
			b->fail(b, i, "theta is not finite");
			continue;
		}
		for (size_t j = 0; j < b->dx; j++)
			x[j] = theta[j] + b->host->normal(b->rng[i], 0.0, s->sigma);
	}
	return 0;
}

static void
gauss_free(void *state)
{
	free(state);
}

SBIRUN_PLUGIN(simulate, gauss_init, gauss_simulate, gauss_free);
