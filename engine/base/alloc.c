/* Counting allocator with fault injection for tests (see alloc.h). A header
 * in front of each block would break alignment guarantees for doubles, so
 * only the count of live blocks is tracked, not their sizes. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "sbi/alloc.h"

/* Atomic: several flows may train in threads at once (lang/l_flow.c). */
static atomic_long live_blocks;
static long fail_after = -1;

static int
should_fail(void)
{
	if (fail_after < 0)
		return 0;
	if (fail_after == 0)
		return 1;
	fail_after--;
	return 0;
}

void *
sbi_malloc(size_t n)
{
	if (should_fail())
		return NULL;
	void *p = malloc(n ? n : 1);
	if (p)
		live_blocks++;
	return p;
}

void *
sbi_calloc(size_t count, size_t size)
{
	if (should_fail())
		return NULL;
	void *p = calloc(count ? count : 1, size ? size : 1);
	if (p)
		live_blocks++;
	return p;
}

void *
sbi_realloc(void *p, size_t n)
{
	if (p == NULL)
		return sbi_malloc(n);
	if (should_fail())
		return NULL;
	return realloc(p, n ? n : 1);
}

void
sbi_free(void *p)
{
	if (p == NULL)
		return;
	live_blocks--;
	free(p);
}

char *
sbi_strdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = sbi_malloc(n);
	if (d)
		memcpy(d, s, n);
	return d;
}

void
sbi_test_fail_alloc_after(long n)
{
	fail_after = n;
}

long
sbi_test_live_blocks(void)
{
	return atomic_load(&live_blocks);
}
