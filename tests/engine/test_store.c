/* Artifacts and the cache: round trips, corruption detection, atomicity. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "sbi/alloc.h"
#include "sbi/artifact.h"
#include "sbi/cache.h"
#include "sbi/fsutil.h"

static char *
tmpdir(void)
{
	static char buf[64];
	snprintf(buf, sizeof buf, "/tmp/sbi-test-store.XXXXXX");
	return mkdtemp(buf);
}

static sbi_artifact *
sample_artifact(void)
{
	sbi_artifact *a = sbi_artifact_alloc();
	sbi_mat *m = sbi_mat_alloc(3, 2);
	for (int i = 0; i < 6; i++)
		m->data[i] = 2.385 * i - 1.5;
	sbi_artifact_set_mat(a, "theta", m);
	sbi_artifact_set_str(a, "note", "hello", 5);
	sbi_artifact_set_num(a, "eps", 0.125);
	const char *names[] = { "a", "bb" };
	sbi_artifact_set_strs(a, "names", names, NULL, 2);
	const char *blobs[] = { "x\0y", "" }; /* binary strings (models) keep their NULs */
	const size_t blob_lens[] = { 3, 0 };
	sbi_artifact_set_strs(a, "blobs", blobs, blob_lens, 2);
	return a;
}

static void
check_same(const sbi_artifact *a, const sbi_artifact *b)
{
	sbi_mat *x = sbi_artifact_mat(a, "theta"), *y = sbi_artifact_mat(b, "theta");
	CHECK(y != NULL && y->nrow == 3 && y->ncol == 2);
	for (int i = 0; y && i < 6; i++)
		CHECK(x->data[i] == y->data[i]);
	const sbi_field *s = sbi_artifact_get(b, "note", SBI_FIELD_STR);
	CHECK(s && s->len == 5);
	CHECK_STR(s ? s->str : NULL, "hello");
	CHECK(sbi_artifact_num(b, "eps", -1) == 0.125);
	const sbi_field *n = sbi_artifact_get(b, "names", SBI_FIELD_STRS);
	CHECK(n && n->len == 2);
	CHECK_STR(n ? n->strs[1] : NULL, "bb");
	const sbi_field *bl = sbi_artifact_get(b, "blobs", SBI_FIELD_STRS);
	CHECK(bl && bl->len == 2 && bl->lens[0] == 3 && bl->lens[1] == 0);
	CHECK(bl && memcmp(bl->strs[0], "x\0y", 3) == 0);
}

TEST(artifact_round_trip)
{
	char *dir = tmpdir();
	sbi_artifact *a = sample_artifact(), *b = NULL;
	sbi_key h, h2;
	sbi_err err = { 0 };
	sbi_key k, k2;
	sbi_hash_buffer("key", 3, &k);
	sbi_hash_buffer("other key", 9, &k2);
	CHECK(sbi_artifact_store(a, dir, &k, &h, &err) == SBI_OK);
	/* Same content and key, same name; another key, another artifact. */
	CHECK(sbi_artifact_store(a, dir, &k, &h2, &err) == SBI_OK);
	CHECK(sbi_key_equal(&h, &h2));
	CHECK(sbi_artifact_store(a, dir, &k2, &h2, &err) == SBI_OK);
	CHECK(!sbi_key_equal(&h, &h2));
	char *path = sbi_artifact_path(dir, &h);
	CHECK(sbi_artifact_load(path, &h, &b, &err) == SBI_OK);
	if (b) {
		check_same(a, b);
		CHECK(sbi_key_equal(&b->key, &k));
	}
	sbi_artifact_free(a);
	sbi_artifact_free(b);
	sbi_free(path);
}

/* Flips one byte at offset off of file path. */
/* sbi_cache_ref_fn counting chunks in *(long *)ud. */
static int
count_chunk(void *ud, const char *ref_path, const sbi_key *key)
{
	(void)ref_path;
	(void)key;
	++*(long *)ud;
	return SBI_OK;
}

static void
flip_byte(const char *path, long off)
{
	FILE *f = fopen(path, "r+b");
	fseek(f, off, SEEK_SET);
	int c = fgetc(f);
	fseek(f, off, SEEK_SET);
	fputc(c ^ 0x40, f);
	fclose(f);
}

/* The sample artifact stored under key 7 in a new temporary folder: its hash
 * *h and file *path (caller frees the artifact and *path). */
static sbi_artifact *
stored_sample(sbi_key *h, char **path)
{
	char *dir = tmpdir();
	sbi_artifact *a = sample_artifact();
	sbi_key k = { { 7 } };
	sbi_err err = { 0 };
	CHECK(sbi_artifact_store(a, dir, &k, h, &err) == SBI_OK);
	*path = sbi_artifact_path(dir, h);
	return a;
}

TEST(artifact_every_flipped_byte_detected)
{
	sbi_key h;
	char *path;
	sbi_artifact *a = stored_sample(&h, &path);
	sbi_err err = { 0 };
	struct stat st;
	stat(path, &st);
	long live = sbi_test_live_blocks();
	for (long off = 0; off < st.st_size; off++) {
		flip_byte(path, off);
		sbi_artifact *b = NULL;
		int rc = sbi_artifact_load(path, &h, &b, &err);
		CHECK(rc == SBI_ECORRUPT);
		CHECK(b == NULL);
		flip_byte(path, off);
	}
	CHECK(sbi_test_live_blocks() == live);
	/* Truncation at every length. */
	for (long len = 0; len < st.st_size; len += 7) {
		CHECK(truncate(path, len) == 0);
		sbi_artifact *b = NULL;
		CHECK(sbi_artifact_load(path, &h, &b, &err) == SBI_ECORRUPT);
		CHECK_CONTAINS(err.msg, "corrupt");
	}
	sbi_artifact_free(a);
	sbi_free(path);
}

/* A new cache in a new temporary folder *dir, and the keys of two nodes;
 * NULL (a failed check) when it cannot be opened. */
static sbi_cache *
new_cache(char **dir, sbi_key *k1, sbi_key *k2)
{
	sbi_err err = { 0 };
	*dir = tmpdir();
	sbi_cache *c = sbi_cache_open(*dir, &err);
	CHECK(c != NULL);
	sbi_hash_buffer("node one", 8, k1);
	sbi_hash_buffer("node two", 8, k2);
	return c;
}

TEST(cache_put_get_corrupt_and_gc)
{
	char *dir;
	sbi_err err = { 0 };
	sbi_key k1, k2, h;
	sbi_cache *c = new_cache(&dir, &k1, &k2);
	if (c == NULL)
		return;
	sbi_artifact *a = sample_artifact(), *b = NULL;
	CHECK(!sbi_cache_has(c, &k1));
	CHECK(sbi_cache_get(c, &k1, &b, NULL, &err) == SBI_ENOTFOUND);
	CHECK(sbi_cache_put(c, &k1, a, "one", &h, &err) == SBI_OK);
	CHECK(sbi_cache_has(c, &k1));
	CHECK(sbi_cache_get(c, &k1, &b, NULL, &err) == SBI_OK);
	if (b)
		check_same(a, b);
	sbi_artifact_free(b);
	b = NULL;

	/* Corrupt the object: reported, removed, then a miss. */
	char *objdir = sbi_path_join(dir, "objects"), *obj = sbi_artifact_path(objdir, &h);
	struct stat st;
	stat(obj, &st);
	flip_byte(obj, st.st_size - SBI_KEY_BYTES - 4); /* inside the last matrix's data */
	CHECK(sbi_cache_get(c, &k1, &b, NULL, &err) == SBI_ECORRUPT);
	CHECK_CONTAINS(err.msg, "checksum mismatch");
	CHECK(!sbi_cache_has(c, &k1));
	CHECK(sbi_cache_get(c, &k1, &b, NULL, &err) == SBI_ENOTFOUND);

	/* gc keeps referenced objects only. */
	CHECK(sbi_cache_put(c, &k1, a, "one", NULL, &err) == SBI_OK);
	sbi_artifact_set_num(a, "eps", 0.5);
	CHECK(sbi_cache_put_chunk(c, &k2, a, &k1, 0, &err) == SBI_OK);
	long freed = -1, removed = -1, seen = 0;
	CHECK(sbi_cache_each_chunk(dir, &k1, count_chunk, &seen) == SBI_OK);
	CHECK(seen == 1);
	CHECK(sbi_cache_each_chunk(dir, &k2, count_chunk, &seen) == SBI_OK);
	CHECK(seen == 1); /* k2 owns no chunk */
	CHECK(sbi_cache_gc(c, &freed, &err) == SBI_OK);
	CHECK(freed == 0);
	CHECK(sbi_cache_remove_chunks(c, &k1, &removed, &err) == SBI_OK);
	CHECK(removed == 1);
	CHECK(sbi_cache_gc(c, &freed, &err) == SBI_OK);
	CHECK(freed == 1);
	CHECK(sbi_cache_has(c, &k1));
	CHECK(!sbi_cache_has(c, &k2));
	sbi_cache_close(c);
	sbi_artifact_free(a);
	sbi_free(objdir);
	sbi_free(obj);
}

/* An entry waiting for its owner is dropped, ref and object, when the
 * owner's artifact is stored with sync, not before (nor by a chunk's
 * unsynced put under the owner's key). */
TEST(cache_drop_when_stored)
{
	char *dir;
	sbi_err err = { 0 };
	sbi_key k1, k2, h2;
	sbi_cache *c = new_cache(&dir, &k1, &k2);
	if (c == NULL)
		return;
	sbi_artifact *a = sample_artifact();
	CHECK(sbi_cache_put_chunk(c, &k2, a, &k1, 0, &err) == SBI_OK);
	char *ref2 = sbi_cache_ref_path(dir, &k2);
	CHECK(sbi_cache_read_ref(ref2, &h2, &err) == SBI_OK);
	sbi_free(ref2);
	CHECK(sbi_cache_drop_when_stored(c, &k1, &k2) == SBI_OK);
	CHECK(sbi_cache_has(c, &k2));
	CHECK(sbi_cache_put_chunk(c, &k1, a, &k2, 0, &err) == SBI_OK);
	CHECK(sbi_cache_has(c, &k2));
	CHECK(sbi_cache_put(c, &k1, a, "one", NULL, &err) == SBI_OK);
	CHECK(!sbi_cache_has(c, &k2));
	CHECK(sbi_cache_has(c, &k1));
	char *objdir = sbi_path_join(dir, "objects"), *obj = sbi_artifact_path(objdir, &h2);
	CHECK(!sbi_fs_exists(obj));
	long freed = -1;
	CHECK(sbi_cache_gc(c, &freed, &err) == SBI_OK);
	CHECK(freed == 0);
	sbi_cache_close(c);
	sbi_artifact_free(a);
	sbi_free(objdir);
	sbi_free(obj);
}

/* Copies the file at from over the file at to. */
static void
copy_file(const char *from, const char *to)
{
	char *text = NULL;
	size_t n = 0;
	sbi_err err = { 0 };
	CHECK(sbi_fs_read_all(from, &text, &n, &err) == SBI_OK);
	CHECK(sbi_fs_write_atomic(to, text, n, &err) == SBI_OK);
	sbi_free(text);
}

TEST(cache_ref_to_another_key_is_detected)
{
	char *dir;
	sbi_err err = { 0 };
	sbi_key k1, k2, h1, h2;
	sbi_cache *c = new_cache(&dir, &k1, &k2);
	if (c == NULL)
		return;
	sbi_artifact *a = sample_artifact(), *b = NULL;
	CHECK(sbi_cache_put(c, &k1, a, "one", &h1, &err) == SBI_OK);
	sbi_artifact_set_num(a, "eps", 0.5);
	CHECK(sbi_cache_put(c, &k2, a, "two", &h2, &err) == SBI_OK);
	/* The ref of k1 now names k2's (valid) artifact. */
	char *refs = sbi_path_join(dir, "refs"), *r1 = sbi_artifact_path(refs, &k1), *r2 = sbi_artifact_path(refs, &k2);
	copy_file(r2, r1);
	CHECK(sbi_cache_get(c, &k1, &b, NULL, &err) == SBI_ECORRUPT);
	CHECK(b == NULL);
	CHECK_CONTAINS(err.msg, "which is the result of key");
	CHECK(!sbi_cache_has(c, &k1));
	/* The object itself is fine and stays for k2. */
	CHECK(sbi_cache_get(c, &k2, &b, NULL, &err) == SBI_OK);
	CHECK(b && sbi_artifact_num(b, "eps", 0) == 0.5);
	sbi_artifact_free(b);
	b = NULL;
	/* An artifact of format version 1 (no key) is a miss, not misread. */
	char *objs = sbi_path_join(dir, "objects"), *o2 = sbi_artifact_path(objs, &h2);
	FILE *f = fopen(o2, "r+b");
	CHECK(f && fwrite("SBIART01", 1, 8, f) == 8);
	if (f)
		fclose(f);
	CHECK(sbi_cache_get(c, &k2, &b, NULL, &err) == SBI_ENOTFOUND);
	CHECK(b == NULL);
	CHECK(!sbi_cache_has(c, &k2));
	sbi_cache_close(c);
	sbi_artifact_free(a);
	sbi_free(refs), sbi_free(r1), sbi_free(r2), sbi_free(objs), sbi_free(o2);
}

TEST(artifact_references)
{
	long live = sbi_test_live_blocks();
	sbi_artifact *a = sample_artifact();
	CHECK(sbi_artifact_retain(a) == a);
	sbi_artifact_free(a); /* one reference left */
	CHECK(sbi_artifact_num(a, "eps", -1) == 0.125);
	sbi_artifact_free(a);
	CHECK(sbi_test_live_blocks() == live);
}

TEST(cache_unwritable_is_an_error)
{
	sbi_err err = { 0 };
	/* A path below a regular file cannot be created, even by root. */
	char *dir = tmpdir();
	char *file = sbi_path_join(dir, "file");
	CHECK(sbi_fs_write_atomic(file, "x", 1, &err) == SBI_OK);
	char *below = sbi_path_join(file, "cache");
	sbi_cache *c = sbi_cache_open(below, &err);
	CHECK(c == NULL);
	CHECK_CONTAINS(err.msg, below);
	sbi_free(file);
	sbi_free(below);
}

TEST(artifact_oom_every_allocation)
{
	sbi_key h;
	char *path;
	sbi_artifact *a = stored_sample(&h, &path);
	sbi_err err = { 0 };
	long live = sbi_test_live_blocks();
	for (long n = 0, rc = -1; rc != SBI_OK; n++) {
		sbi_artifact *b = NULL;
		sbi_test_fail_alloc_after(n);
		rc = sbi_artifact_load(path, &h, &b, &err);
		sbi_test_fail_alloc_after(-1);
		CHECK(rc == SBI_OK || rc == SBI_ENOMEM);
		sbi_artifact_free(b);
		CHECK(sbi_test_live_blocks() == live);
		if (n > 1000)
			break;
	}
	sbi_artifact_free(a);
	sbi_free(path);
}
