/* Runs the tests registered with TEST() (see check.h). With an argument,
 * runs only the tests whose name contains it. */
#include <stdlib.h>

#include "check.h"

int check_failures;
static struct test_case cases[512];
static int ncases;

void
test_register(const char *name, test_fn fn)
{
	if (ncases < (int)(sizeof cases / sizeof cases[0]))
		cases[ncases++] = (struct test_case){ name, fn };
}

int
main(int argc, char **argv)
{
	int passed = 0, failed = 0;
	for (int i = 0; i < ncases; i++) {
		if (argc > 1 && strstr(cases[i].name, argv[1]) == NULL)
			continue;
		int before = check_failures;
		cases[i].fn();
		if (check_failures == before) {
			passed++;
			printf("ok %s\n", cases[i].name);
		} else {
			failed++;
			printf("FAIL %s\n", cases[i].name);
		}
	}
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
