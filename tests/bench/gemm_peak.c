/* Single-thread SGEMM throughput of OpenBLAS on this machine, for square
 * matrices (the peak) and for the shapes of NPE training (batch 50,
 * 50 hidden units). Built and run by neural_speed.sh. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double
now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static double
gflops(int n, int k, int m)
{
	float *a = calloc((size_t)n * k, 4), *b = calloc((size_t)k * m, 4), *c = calloc((size_t)n * m, 4);
	for (int i = 0; i < n * k; i++)
		a[i] = 0.001f * (float)(i % 97);
	for (int i = 0; i < k * m; i++)
		b[i] = 0.002f * (float)(i % 89);
	double flop = 2.0 * n * k * m, t0 = now(), t;
	long reps = 0;
	do {
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, m, k, 1, a, k, b, m, 0, c, m);
		reps++;
	} while ((t = now() - t0) < 0.5);
	free(a), free(b), free(c);
	return flop * (double)reps / t / 1e9;
}

int
main(void)
{
	openblas_set_num_threads(1);
	printf("peak %.1f\n", gflops(1024, 1024, 1024));
	printf("batch %.1f\n", gflops(50, 50, 50));
	return 0;
}
