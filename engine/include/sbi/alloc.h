/* All engine allocations go through these, so tests can make the n-th fail
 * and count live blocks. */
#ifndef SBI_ALLOC_H
#define SBI_ALLOC_H

#include <stddef.h>

void *sbi_malloc(size_t n);           /* NULL on failure; caller frees with sbi_free */
void *sbi_calloc(size_t count, size_t size);
void *sbi_realloc(void *p, size_t n); /* on failure p is left untouched */
void sbi_free(void *p);               /* NULL is fine */
char *sbi_strdup(const char *s);      /* caller frees with sbi_free */

/* Test hooks: fail every allocation after the next n (n < 0 disables), and
 * the number of blocks currently allocated. */
void sbi_test_fail_alloc_after(long n);
long sbi_test_live_blocks(void);

#endif
