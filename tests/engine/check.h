/* A tiny test harness: TEST(name) defines a test, main() runs them all and
 * prints "N passed, N failed". CHECK macros record a failure and go on. */
#ifndef SBI_TEST_CHECK_H
#define SBI_TEST_CHECK_H

#include <math.h>
#include <stdio.h>
#include <string.h>

typedef void (*test_fn)(void);
struct test_case { const char *name; test_fn fn; };

extern int check_failures;
void test_register(const char *name, test_fn fn);

#define TEST(name)                                                       \
	static void name(void);                                          \
	__attribute__((constructor)) static void reg_##name(void)        \
	{ test_register(#name, name); }                                  \
	static void name(void)

#define CHECK(cond)                                                      \
	do { if (!(cond)) { check_failures++;                            \
		fprintf(stderr, "  %s:%d: CHECK(%s) failed\n", __FILE__, \
		    __LINE__, #cond); } } while (0)

#define CHECK_NEAR(a, b, tol)                                            \
	do { double a_ = (a), b_ = (b), t_ = (tol);                      \
		if (!(fabs(a_ - b_) <= t_)) { check_failures++;          \
		fprintf(stderr, "  %s:%d: %s = %.10g, expected %.10g +- %g\n", \
		    __FILE__, __LINE__, #a, a_, b_, t_); } } while (0)

#define CHECK_STR(a, b)                                                  \
	do { const char *a_ = (a), *b_ = (b);                            \
		if (a_ == NULL || strcmp(a_, b_) != 0) { check_failures++; \
		fprintf(stderr, "  %s:%d: %s = \"%s\", expected \"%s\"\n", \
		    __FILE__, __LINE__, #a, a_ ? a_ : "(null)", b_); } } while (0)

/* Passes when haystack contains needle. */
#define CHECK_CONTAINS(hay, needle)                                      \
	do { const char *h_ = (hay), *n_ = (needle);                     \
		if (h_ == NULL || strstr(h_, n_) == NULL) { check_failures++; \
		fprintf(stderr, "  %s:%d: \"%s\" does not contain \"%s\"\n", \
		    __FILE__, __LINE__, h_ ? h_ : "(null)", n_); } } while (0)

#endif
