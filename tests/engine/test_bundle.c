/* Bundles: the reader's security checks on archives crafted here with
 * libarchive (libarchive/test style), and the writer's round trip. Every
 * refused bundle must leave nothing behind. */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "sbi/alloc.h"
#include "sbi/bundle.h"
#include "sbi/fsutil.h"

static char root[64];
/* The manifest's recipe.file in the next crafted bundle. */
static const char *recipe_file = "recipe/r.lua";

static void
setup(void)
{
	snprintf(root, sizeof root, "/tmp/sbi-test-bundle-XXXXXX");
	if (mkdtemp(root) == NULL)
		abort();
}

static void
teardown(void)
{
	sbi_fs_remove_tree(root);
}

/* The number of entries in root (the bundle itself counts 1). */
static int
count_root(void)
{
	DIR *d = opendir(root);
	int n = 0;
	struct dirent *e;
	while (d && (e = readdir(d)) != NULL)
		n += e->d_name[0] != '.' || (e->d_name[1] != '\0' && e->d_name[1] != '.');
	if (d)
		closedir(d);
	return n;
}

enum { REG, SYMLINK, FIFO, HARDLINK };

typedef struct ent {
	const char *name;
	const char *data;
	int type;
	long long header_size; /* 0: strlen(data) */
} ent;

static void
put(struct archive *a, const char *name, const char *data, size_t n, int type, long long hsize)
{
	struct archive_entry *e = archive_entry_new();
	archive_entry_set_pathname(e, name);
	archive_entry_set_perm(e, 0644);
	if (type == SYMLINK) {
		archive_entry_set_filetype(e, AE_IFLNK);
		archive_entry_set_symlink(e, "/etc/passwd");
		n = 0;
	} else if (type == FIFO) {
		archive_entry_set_filetype(e, AE_IFIFO);
		n = 0;
	} else if (type == HARDLINK) {
		archive_entry_set_filetype(e, AE_IFREG);
		archive_entry_set_hardlink(e, "recipe/r.lua");
		n = 0;
	} else
		archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_size(e, hsize ? hsize : (la_int64_t)n);
	archive_write_header(a, e);
	if (n)
		archive_write_data(a, data, n);
	archive_entry_free(e);
}

/* Writes root/b.tar: a manifest declaring decl[0..nd), then ents. */
static const char *
craft(const ent *decl, size_t nd, const ent *ents, size_t ne)
{
	static char path[128];
	snprintf(path, sizeof path, "%s/b.tar", root);
	json_t *files = json_array();
	for (size_t i = 0; i < nd; i++) {
		sbi_key k;
		char hex[SBI_KEY_HEX];
		sbi_hash_buffer(decl[i].data, strlen(decl[i].data), &k);
		sbi_key_hex(&k, hex);
		json_array_append_new(files, json_pack("{s:s, s:I, s:s}", "name", decl[i].name, "size",
		    decl[i].header_size ? decl[i].header_size : (json_int_t)strlen(decl[i].data), "blake2b", hex));
	}
	json_t *m = json_pack("{s:s, s:{s:s}, s:o}", "format", SBI_BUNDLE_FORMAT, "recipe", "file", recipe_file,
	    "files", files);
	char *text = json_dumps(m, 0), hex[SBI_KEY_HEX + 1];
	json_decref(m);
	sbi_key k;
	sbi_hash_buffer(text, strlen(text), &k);
	sbi_key_hex(&k, hex);
	hex[64] = '\n';
	hex[65] = '\0';
	struct archive *a = archive_write_new();
	archive_write_set_format_pax_restricted(a);
	archive_write_open_filename(a, path);
	put(a, "manifest.json", text, strlen(text), REG, 0);
	put(a, "manifest.blake2b", hex, 65, REG, 0);
	for (size_t i = 0; i < ne; i++)
		put(a, ents[i].name, ents[i].data, strlen(ents[i].data), ents[i].type, ents[i].header_size);
	archive_write_close(a);
	archive_write_free(a);
	free(text);
	return path;
}

static const ent good[] = {
	{ "recipe/r.lua", "local sbi = require 'sbi'\n", REG, 0 },
	{ "data/obs/x.csv", "a,b\n1,2\n", REG, 0 },
};

/* Unpack must fail with a message containing want, leaving only b.tar;
 * verify must fail too. */
static void
expect_refused_lim(const char *bundle, const sbi_bundle_limits *lim, const char *want)
{
	char dir[128];
	snprintf(dir, sizeof dir, "%s/out", root);
	long live = sbi_test_live_blocks();
	sbi_err err = { 0 };
	CHECK(sbi_bundle_unpack(bundle, dir, lim, NULL, &err) != SBI_OK);
	CHECK_CONTAINS(err.msg, want);
	CHECK(access(dir, F_OK) != 0);
	CHECK(count_root() == 1);
	sbi_bundle_problems p = { 0 };
	sbi_err e2 = { 0 };
	CHECK(sbi_bundle_verify(bundle, lim, &p, &e2) != SBI_OK);
	CHECK(p.n >= 1);
	CHECK_CONTAINS(e2.msg, want);
	sbi_bundle_problems_clear(&p);
	CHECK(sbi_test_live_blocks() == live);
}

static void
expect_refused(const char *bundle, uint64_t max_entry, const char *want)
{
	sbi_bundle_limits lim = { .max_entry = max_entry };
	expect_refused_lim(bundle, &lim, want);
}

/* In a new root: the bundle crafted from decl and ents is refused (as in
 * expect_refused). */
static void
crafted_refused(const ent *decl, size_t nd, const ent *ents, size_t ne, uint64_t max_entry, const char *want)
{
	setup();
	expect_refused(craft(decl, nd, ents, ne), max_entry, want);
	teardown();
}

TEST(bundle_good_unpacks)
{
	setup();
	const char *b = craft(good, 2, good, 2);
	char dir[128], path[160];
	snprintf(dir, sizeof dir, "%s/out", root);
	sbi_bundle_problems p = { 0 };
	sbi_err err = { 0 };
	CHECK(sbi_bundle_verify(b, NULL, &p, &err) == SBI_OK);
	CHECK(p.n == 0);
	CHECK(sbi_bundle_unpack(b, dir, NULL, NULL, &err) == SBI_OK);
	snprintf(path, sizeof path, "%s/r.lua", dir);
	CHECK(access(path, F_OK) == 0);
	snprintf(path, sizeof path, "%s/obs/x.csv", dir);
	CHECK(access(path, F_OK) == 0);
	/* Unpacking again into the non-empty folder is refused. */
	CHECK(sbi_bundle_unpack(b, dir, NULL, NULL, &err) == SBI_EINVAL);
	CHECK_CONTAINS(err.msg, "not an empty folder");
	teardown();
}

TEST(bundle_refuses_traversal)
{
	ent e[] = { good[0], good[1], { "recipe/../../x", "pwned", REG, 0 } };
	crafted_refused(good, 2, e, 3, 0, "'..' component");
	ent d[] = { { "recipe/../../x", "pwned", REG, 0 } };
	crafted_refused(d, 1, d, 1, 0, "'..' component");
}

TEST(bundle_refuses_absolute)
{
	ent e[] = { good[0], { "/tmp/x", "pwned", REG, 0 } };
	crafted_refused(good, 1, e, 2, 0, "absolute path");
}

TEST(bundle_refuses_links_and_fifos)
{
	ent s[] = { good[0], { "recipe/l", "", SYMLINK, 0 } };
	crafted_refused(good, 1, s, 2, 0, "a symbolic link");
	ent f[] = { good[0], { "recipe/f", "", FIFO, 0 } };
	crafted_refused(good, 1, f, 2, 0, "a FIFO");
	ent h[] = { good[0], { "recipe/h", "", HARDLINK, 0 } };
	crafted_refused(good, 1, h, 2, 0, "a hard link");
}

TEST(bundle_refuses_duplicates_and_extras)
{
	ent d[] = { good[0], good[1], good[0] };
	crafted_refused(good, 2, d, 3, 0, "duplicate entry recipe/r.lua");
	ent x[] = { good[0], good[1], { "recipe/extra.lua", "x", REG, 0 } };
	crafted_refused(good, 2, x, 3, 0, "not in the manifest");
	ent m[] = { good[0], { "manifest.json", "{}", REG, 0 } };
	crafted_refused(good, 1, m, 2, 0, "duplicate entry manifest.json");
}

TEST(bundle_refuses_oversize_and_size_mismatch)
{
	ent big[] = { { "data/big.bin", "0123456789012345678901234567890123456789", REG, 0 } };
	crafted_refused(big, 1, big, 1, 16, "over the limit of 16");
	ent decl[] = { { "recipe/r.lua", "local sbi = require 'sbi'\n", REG, 5 } };
	crafted_refused(decl, 1, good, 1, 0, "the manifest says 5");
}

TEST(bundle_refuses_damage)
{
	ent bad[] = { { "recipe/r.lua", "local sbi = require 'sbX'\n", REG, 0 }, good[1] };
	crafted_refused(good, 2, bad, 2, 0, "recipe/r.lua: hash mismatch");
	crafted_refused(good, 2, good, 1, 0, "data/obs/x.csv is missing");
	/* A truncated archive: cut inside the last entry's data. */
	setup();
	char big[20000];
	memset(big, 'a', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	ent e[] = { good[0], { "data/big.txt", big, REG, 0 } };
	const char *b = craft(e, 2, e, 2);
	struct stat st;
	stat(b, &st);
	CHECK(truncate(b, 4096 + 10240) == 0);
	expect_refused(b, 0, "data/big.txt");
	teardown();
}

/* The writer, and a flipped byte anywhere in an entry, with and without
 * compression. */
static void
round_trip(const char *comp_name)
{
	setup();
	char src[128], bundle[128];
	snprintf(src, sizeof src, "%s/obs.csv", root);
	FILE *f = fopen(src, "wb");
	for (int i = 0; i < 5000; i++)
		fprintf(f, "%d,%d\n", i, i * 7 % 13);
	fclose(f);
	snprintf(bundle, sizeof bundle, "%s/b.sbi.tar", root);
	sbi_bundle_files files = { 0 };
	sbi_err err = { 0 };
	int comp;
	CHECK(sbi_bundle_compression(comp_name, &comp) == SBI_OK);
	CHECK(sbi_bundle_files_add(&files, "data/obs.csv", src, &err) == SBI_OK);
	CHECK(sbi_bundle_files_add(&files, "../x", src, &err) == SBI_EINVAL);
	CHECK(sbi_bundle_files_add(&files, "recipe/r.lua", src, &err) == SBI_OK);
	json_t *m = json_pack("{s:s, s:{s:s}}", "format", SBI_BUNDLE_FORMAT, "recipe", "file", "recipe/r.lua");
	CHECK(sbi_bundle_write(bundle, comp, m, &files, &err) == SBI_OK);
	json_decref(m);
	sbi_bundle_files_clear(&files);
	unlink(src);
	sbi_bundle_problems p = { 0 };
	CHECK(sbi_bundle_verify(bundle, NULL, &p, &err) == SBI_OK);
	json_t *got = NULL;
	CHECK(sbi_bundle_read_manifest(bundle, NULL, &got, &err) == SBI_OK);
	CHECK(json_array_size(json_object_get(got, "files")) == 2);
	json_decref(got);
	/* Flip one byte in the middle of the archive. */
	struct stat st;
	stat(bundle, &st);
	f = fopen(bundle, "r+b");
	long at = strcmp(comp_name, "none") == 0 ? 4 * 512 + 1536 + 100 : (long)st.st_size / 2;
	fseek(f, at, SEEK_SET);
	int c = fgetc(f);
	fseek(f, at, SEEK_SET);
	fputc(c ^ 0x20, f);
	fclose(f);
	CHECK(sbi_bundle_verify(bundle, NULL, &p, &err) != SBI_OK);
	CHECK(p.n >= 1);
	sbi_bundle_problems_clear(&p);
	teardown();
}

TEST(bundle_write_and_flip)
{
	round_trip("none");
	round_trip("zstd");
	round_trip("gzip");
}

/* recipe.file must be an entry under recipe/: a nested one is fine (the
 * session finds the marker above it), "..", another folder or a name
 * missing from the bundle are refused by verify and unpack alike. */
TEST(bundle_recipe_file)
{
	ent nested[] = { { "recipe/sub/r.lua", "return 1\n", REG, 0 } };
	setup();
	recipe_file = "recipe/sub/r.lua";
	sbi_bundle_problems p = { 0 };
	sbi_err err = { 0 };
	CHECK(sbi_bundle_verify(craft(nested, 1, nested, 1), NULL, &p, &err) == SBI_OK);
	teardown();
	const char *bad[] = { "recipe/../r.lua", "recipe/sub/../../../x.lua", "data/obs/x.csv", "/etc/passwd",
		"recipe/other.lua" };
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		recipe_file = bad[i];
		crafted_refused(good, 2, good, 2, 0, "recipe.file");
	}
	recipe_file = "recipe/r.lua";
}

/* Nothing but cache/ may reach DIR/.sbirun (reads.json there lists the
 * files `sbirun bundle` packs), nor the marker and the map. */
TEST(bundle_refuses_cache_metadata)
{
	const char *names[] = { "recipe/.sbirun/reads.json", "data/.sbirun/reads.json", "recipe/sub/.sbirun/x",
		"recipe/.sbirun", "recipe/.sbirun-bundle-paths", "data/.sbirun-bundle" };
	for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
		ent e[] = { good[0], { names[i], "[]", REG, 0 } };
		crafted_refused(e, 2, e, 2, 0, i < 4 ? "a .sbirun folder" : "reserved name");
	}
	CHECK(sbi_bundle_check_name("recipe/.sbirunx/a") == NULL);
	CHECK(sbi_bundle_check_name("recipe/x.sbirun") == NULL);
}

TEST(bundle_limits)
{
	char big[2000];
	memset(big, 'z', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	ent e[] = { good[0], { "data/a.bin", big, REG, 0 }, { "data/b.bin", big, REG, 0 } };
	setup();
	sbi_bundle_limits lim = { .max_unpacked = 3000 };
	expect_refused_lim(craft(e, 3, e, 3), &lim, "over the limit of 3000 bytes (--max-unpacked-size)");
	lim = (sbi_bundle_limits){ .max_manifest = 100 };
	expect_refused_lim(craft(e, 3, e, 3), &lim, "manifest.json is larger than 100 bytes (--max-manifest-size)");
	json_t *m = NULL;
	sbi_err err = { 0 };
	CHECK(sbi_bundle_read_manifest(craft(e, 3, e, 3), &lim, &m, &err) == SBI_ECORRUPT ||
	    err.code != SBI_OK);
	CHECK_CONTAINS(err.msg, "larger than 100 bytes");
	lim = (sbi_bundle_limits){ .max_unpacked = 6000 };
	sbi_bundle_problems p = { 0 };
	CHECK(sbi_bundle_verify(craft(e, 3, e, 3), &lim, &p, &err) == SBI_OK);
	teardown();
}

/* Text from a bundle is escaped in messages; the helpers themselves. */
TEST(bundle_escapes_text)
{
	setup();
	ent e[] = { good[0], { "recipe/\x1b[2J\x1b]0;pwn\x07x", "x", REG, 0 } };
	char dir[128];
	snprintf(dir, sizeof dir, "%s/out", root);
	sbi_err err = { 0 };
	CHECK(sbi_bundle_unpack(craft(e, 2, e, 2), dir, NULL, NULL, &err) != SBI_OK);
	CHECK_CONTAINS(err.msg, "recipe/\\x1b[2J\\x1b]0;pwn\\x07x");
	CHECK(strchr(err.msg, 0x1b) == NULL);
	teardown();
	char out[64];
	CHECK(strcmp(sbi_bundle_escape("a\tb\\c\x7f", out, sizeof out), "a\\x09b\\c\\x7f") == 0);
	CHECK(strcmp(sbi_bundle_escape("\xc3\xa9t\xc3\xa9", out, sizeof out), "\xc3\xa9t\xc3\xa9") == 0);
	CHECK(strcmp(sbi_bundle_escape("\xc2\x9b" "31m\xff", out, sizeof out), "\\xc2\\x9b31m\\xff") == 0);
	CHECK(strcmp(sbi_bundle_escape("\xe2\x80\xae" "abc", out, sizeof out), "\\xe2\\x80\\xaeabc") == 0);
	CHECK(strcmp(sbi_bundle_escape("0123456789abcdef", out, 12), "01234567...") == 0);
	const char *q[][2] = { { "simulations=5000", "simulations=5000" }, { "", "''" },
		{ "x && curl e.sh | sh", "'x && curl e.sh | sh'" }, { "it's", "'it'\\''s'" },
		{ "$(rm -rf ~)", "'$(rm -rf ~)'" } };
	for (size_t i = 0; i < sizeof q / sizeof *q; i++) {
		char *got = sbi_bundle_shell_quote(q[i][0]);
		CHECK(got && strcmp(got, q[i][1]) == 0);
		sbi_free(got);
	}
}

/* A failing write (here a file size limit, as a full disk) is reported
 * with its real cause, and nothing is left behind. */
TEST(bundle_unpack_write_error)
{
	setup();
	static char big[100000];
	memset(big, 'w', sizeof big - 1);
	ent e[] = { good[0], { "data/big.bin", big, REG, 0 } };
	const char *b = craft(e, 2, e, 2);
	char dir[128];
	snprintf(dir, sizeof dir, "%s/out", root);
	struct rlimit old, small;
	CHECK(getrlimit(RLIMIT_FSIZE, &old) == 0);
	small = old;
	small.rlim_cur = 8192;
	void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
	CHECK(setrlimit(RLIMIT_FSIZE, &small) == 0);
	sbi_err err = { 0 };
	int rc = sbi_bundle_unpack(b, dir, NULL, NULL, &err);
	setrlimit(RLIMIT_FSIZE, &old);
	signal(SIGXFSZ, prev);
	CHECK(rc == SBI_EIO);
	CHECK_CONTAINS(err.msg, "data/big.bin: cannot write: ");
	CHECK_CONTAINS(err.msg, strerror(EFBIG));
	CHECK(strstr(err.msg, "File exists") == NULL);
	CHECK(count_root() == 1);
	teardown();
}

/* What unpack would refuse, verify refuses: entries landing on the same
 * file, or on a file and a folder. */
TEST(bundle_refuses_colliding_destinations)
{
	ent same[] = { good[0], { "recipe/x.csv", "1", REG, 0 }, { "data/x.csv", "2", REG, 0 } };
	crafted_refused(same, 3, same, 3, 0, "two entries unpack to the same file x.csv");
	ent nest[] = { good[0], { "data/a", "1", REG, 0 }, { "data/a-b", "1", REG, 0 }, { "recipe/a/b", "2", REG, 0 } };
	crafted_refused(nest, 4, nest, 4, 0, "a would be both a file and a folder");
	ent ok[] = { good[0], { "data/a-b", "1", REG, 0 }, { "recipe/a/b", "2", REG, 0 }, { "data/a/c", "3", REG, 0 } };
	setup();
	sbi_bundle_problems p = { 0 };
	sbi_err err = { 0 };
	CHECK(sbi_bundle_verify(craft(ok, 4, ok, 4), NULL, &p, &err) == SBI_OK);
	teardown();
}
