/* Plugins for tests/cli/t0701-native-simulators.sh: broken or failing on
 * purpose (recipes/examples/gauss_plugin.c is the working example). Each is
 * a descriptor of its own symbol. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sbirun/plugin.h"

/* x = theta + N(0, 0.5) draws; rows with theta_1 > 2.2 fail with a message. */
static int
fails_above(void *state, sbirun_batch *b)
{
	(void)state;
	for (size_t i = 0; i < b->n; i++) {
		const double *t = b->theta + i * b->dtheta;
		if (t[0] > 2.2) {
			b->fail(b, i, "theta_1 is above 2.2");
			continue;
		}
		for (size_t j = 0; j < b->dx; j++)
			b->x[i * b->dx + j] = t[j] + b->host->normal(b->rng[i], 0.0, 0.5);
	}
	return 0;
}

/* Leaves NaN in rows with theta_1 > 2.2 (no message). */
static int
nan_above(void *state, sbirun_batch *b)
{
	(void)state;
	for (size_t i = 0; i < b->n; i++) {
		const double *t = b->theta + i * b->dtheta;
		for (size_t j = 0; j < b->dx; j++)
			b->x[i * b->dx + j] = t[0] > 2.2 ? NAN : t[j];
	}
	return 0;
}

static int
init_fails(void **state, size_t dtheta, size_t dx, char *error, size_t nerror)
{
	(void)state;
	snprintf(error, nerror, "cannot open the detector geometry (dtheta %zu, dx %zu)", dtheta, dx);
	return 1;
}

/* Crashes the process (a worker, or sbirun itself with --jobs 1) above 2.2. */
static int
crash_above(void *state, sbirun_batch *b)
{
	(void)state;
	for (size_t i = 0; i < b->n; i++) {
		if (b->theta[i * b->dtheta] > 2.2)
			abort(); /* a crash the sanitizers' builds let through (they catch SIGSEGV) */
		memcpy(b->x + i * b->dx, b->theta + i * b->dtheta, b->dx * sizeof(double));
	}
	return 0;
}

SBIRUN_PLUGIN(failing, NULL, fails_above, NULL);
SBIRUN_PLUGIN(nan_rows, NULL, nan_above, NULL);
SBIRUN_PLUGIN(bad_init, init_fails, fails_above, NULL);
SBIRUN_PLUGIN(crashing, NULL, crash_above, NULL);
SBIRUN_EXPORT extern const sbirun_plugin future;
const sbirun_plugin future = { 999, (uint32_t)sizeof(sbirun_plugin), NULL, fails_above, NULL };
