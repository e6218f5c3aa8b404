/* libFuzzer target for the bundle reader (engine/store/bundle.c): the input is
 * a bundle file; it is read as sbirun show, verify and unpack read it.
 * Build with clang: CC=clang meson setup build-fuzz -Dfuzz=true, then
 * build-fuzz/tests/fuzz/fuzz_bundle tests/fuzz/corpus/bundle (see
 * tests/fuzz/README.md). Every entry may hold at most 1 MiB here, so a
 * huge declared size is refused quickly. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sbi/bundle.h"
#include "sbi/fsutil.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64], file[128], out[128];

static void
cleanup(void)
{
	if (dir[0])
		sbi_fs_remove_tree(dir);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (dir[0] == '\0') {
		const char *t = getenv("TMPDIR");
		snprintf(dir, sizeof dir, "%.40s/fuzz-bundle-XXXXXX", t && *t ? t : "/tmp");
		if (mkdtemp(dir) == NULL)
			abort();
		snprintf(file, sizeof file, "%s/in.tar", dir);
		snprintf(out, sizeof out, "%s/out", dir);
		atexit(cleanup);
	}
	FILE *f = fopen(file, "wb");
	if (f == NULL || fwrite(data, 1, size, f) != size || fclose(f) != 0)
		abort();
	/* Small limits, so that declared sizes cannot make a run slow. */
	const sbi_bundle_limits lim = { .max_entry = (uint64_t)1 << 20, .max_manifest = (uint64_t)1 << 20,
		.max_unpacked = (uint64_t)4 << 20 };
	sbi_err err = { 0 };
	json_t *m = NULL;
	if (sbi_bundle_read_manifest(file, &lim, &m, &err) == SBI_OK)
		json_decref(m);
	sbi_bundle_problems p = { 0 };
	err = (sbi_err){ 0 };
	sbi_bundle_verify(file, &lim, &p, &err);
	sbi_bundle_problems_clear(&p);
	m = NULL;
	err = (sbi_err){ 0 };
	if (sbi_bundle_unpack(file, out, &lim, &m, &err) == SBI_OK)
		json_decref(m);
	sbi_fs_remove_tree(out);
	return 0;
}
