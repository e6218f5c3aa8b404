/* An example external simulator (docs/simulators.md#external-programs):
 * the conjugate Gaussian model of gauss_native.lua as a program speaking
 * sbirun's line protocol. Each request line on stdin is
 *     SEED THETA_1 ... THETA_d
 * and it answers one line on stdout: x_1 ... x_d with
 * x_j = theta_j + sigma eps_j, its eps_j normal draws from its own
 * generator seeded with SEED (so the same SEED gives the same x), or
 * "error MESSAGE".
 *
 * Options: --sigma S (0.5); --delay MS (sleep MS milliseconds per request,
 * a stand-in for an expensive simulator); and, to exercise sbirun's handling of broken
 * programs (tests/cli), --fail MODE --above T: for theta_1 > T it does MODE:
 * crash (abort), hang (sleeps forever), malformed (answers a non-number),
 * length (answers one value too many), error (answers "error ..."),
 * nan (answers NaN). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAXD 64

/* splitmix64: a small, well-mixed generator for the example. */
static uint64_t
next64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15u);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
	return z ^ (z >> 31);
}

/* (0, 1) */
static double
uniform(uint64_t *s)
{
	return ((double)(next64(s) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

/* Box-Muller: one standard normal per call. */
static double
normal(uint64_t *s)
{
	const double two_pi = 6.283185307179586;
	return sqrt(-2.0 * log(uniform(s))) * cos(two_pi * uniform(s));
}

static void
fail_as(const char *mode, size_t d)
{
	if (strcmp(mode, "crash") == 0)
		abort();
	if (strcmp(mode, "hang") == 0)
		for (;;)
			pause();
	if (strcmp(mode, "malformed") == 0)
		printf("oops, not numbers\n");
	else if (strcmp(mode, "length") == 0) {
		for (size_t j = 0; j <= d; j++)
			printf(j ? " %d" : "%d", 1);
		printf("\n");
	} else if (strcmp(mode, "nan") == 0) {
		for (size_t j = 0; j < d; j++)
			printf(j ? " nan" : "nan");
		printf("\n");
	} else
		printf("error theta_1 is above the threshold\n");
}

int
main(int argc, char **argv)
{
	double sigma = 0.5, above = INFINITY, delay = 0;
	const char *mode = NULL;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--sigma") == 0)
			sigma = atof(argv[i + 1]);
		else if (strcmp(argv[i], "--delay") == 0)
			delay = atof(argv[i + 1]);
		else if (strcmp(argv[i], "--fail") == 0)
			mode = argv[i + 1];
		else if (strcmp(argv[i], "--above") == 0)
			above = atof(argv[i + 1]);
		else {
			fprintf(stderr, "gauss_program: unknown option %s\n", argv[i]);
			return 2;
		}
	}
	char line[8192];
	while (fgets(line, sizeof line, stdin) != NULL) {
		char *p = line, *end;
		uint64_t seed = strtoull(p, &end, 10);
		double theta[MAXD];
		size_t d = 0;
		for (p = end; d < MAXD; p = end) {
			theta[d] = strtod(p, &end);
			if (end == p)
				break;
			d++;
		}
		if (delay > 0)
			usleep((useconds_t)(delay * 1000));
		if (d == 0) {
			printf("error expected a seed and parameters, got: %s", line);
		} else if (mode != NULL && theta[0] > above) {
			fail_as(mode, d);
		} else {
			for (size_t j = 0; j < d; j++)
				printf(j ? " %.17g" : "%.17g", theta[j] + sigma * normal(&seed));
			printf("\n");
		}
		fflush(stdout); /* one answer per request, now: sbirun waits for it */
	}
	return 0;
}
