/* Provenance: reads once per path and step, relative paths, a bundle's
 * path map, and the cache's record of reads. */
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "sbi/alloc.h"
#include "sbi/bundle.h"
#include "sbi/fsutil.h"
#include "sbi/provenance.h"

static sbi_key
key_of(const char *s)
{
	sbi_key k;
	sbi_hash_buffer(s, strlen(s), &k);
	return k;
}

TEST(reads_once_per_path_and_step)
{
	sbi_prov *p = sbi_prov_alloc("proj");
	sbi_key a = key_of("a"), b = key_of("b");
	CHECK(sbi_prov_add_read(p, "proj/x.csv", "proj/x.csv", NULL) == SBI_OK);
	CHECK(sbi_prov_add_read(p, "proj/x.csv", "proj/x.csv", NULL) == SBI_OK);
	CHECK(sbi_prov_add_read(p, "proj/x.csv", "proj/x.csv", &a) == SBI_OK);
	CHECK(sbi_prov_add_read(p, "proj/x.csv", "proj/x.csv", &b) == SBI_OK);
	CHECK(sbi_prov_add_read(p, "proj/x.csv", "proj/x.csv", &a) == SBI_OK);
	CHECK(sbi_prov_add_read(p, "/abs/y.npy", "/abs/y.npy", &a) == SBI_OK);
	CHECK(sbi_prov_nreads(p) == 4);
	CHECK(strcmp(sbi_prov_read_at(p, 0)->rel, "x.csv") == 0);
	CHECK(!sbi_prov_read_at(p, 0)->has_node);
	CHECK(sbi_prov_read_at(p, 2)->has_node && sbi_key_equal(&sbi_prov_read_at(p, 2)->node, &b));
	CHECK(sbi_prov_read_at(p, 3)->rel == NULL);
	CHECK(sbi_prov_add_module(p, "proj/m.lua") == SBI_OK && sbi_prov_nmodules(p) == 1);
	CHECK(sbi_prov_add_data(p, "obs.csv", "proj/obs.csv") == SBI_OK && sbi_prov_ndata(p) == 1);
	CHECK(strcmp(sbi_prov_data_at(p, 0)->found, "proj/obs.csv") == 0);
	sbi_prov_free(p);
	sbi_prov_free(NULL);
}

TEST(recipe_rel)
{
	CHECK(strcmp(sbi_prov_recipe_rel("d/./x", "d"), "x") == 0);
	CHECK(strcmp(sbi_prov_recipe_rel("./x", "."), "x") == 0);
	CHECK(sbi_prov_recipe_rel("/x", ".") == NULL);
	CHECK(sbi_prov_recipe_rel("dd/x", "d") == NULL);
	CHECK(sbi_prov_recipe_rel("d/", "d") == NULL);
	CHECK(sbi_prov_recipe_rel("x", NULL) == NULL);
}

static char *
tmpdir(void)
{
	static char buf[64];
	snprintf(buf, sizeof buf, "/tmp/sbi-test-prov.XXXXXX");
	return mkdtemp(buf);
}

TEST(path_map)
{
	char *dir = tmpdir(), *file = sbi_path_join(dir, SBI_BUNDLE_PATHS);
	const char *json = "[{\"path\": \"data.csv\", \"rel\": \"data.csv\", \"unpack\": \"data.csv\"},"
	    "{\"path\": \"/abs/y.csv\", \"unpack\": \"external/y.csv\"},"
	    "{\"path\": \"/abs/z.csv\", \"unpack\": \"../escape.csv\"}]";
	CHECK(sbi_fs_write_atomic(file, json, strlen(json), NULL) == SBI_OK);
	sbi_prov *p = sbi_prov_alloc(".");
	CHECK(strcmp(sbi_prov_map(p, "data.csv"), "data.csv") == 0); /* no map yet */
	CHECK(sbi_prov_load_map(p, dir) == SBI_OK);
	char want[128];
	snprintf(want, sizeof want, "%s/data.csv", dir);
	CHECK(strcmp(sbi_prov_map(p, "./data.csv"), want) == 0);
	snprintf(want, sizeof want, "%s/external/y.csv", dir);
	CHECK(strcmp(sbi_prov_map(p, "/abs/y.csv"), want) == 0);
	CHECK(strcmp(sbi_prov_map(p, "/abs/z.csv"), "/abs/z.csv") == 0); /* would leave the folder */
	CHECK(strcmp(sbi_prov_map(p, "other.csv"), "other.csv") == 0);
	sbi_prov_free(p);
	unlink(file);
	rmdir(dir);
	sbi_free(file);
}

TEST(record)
{
	char *dir = tmpdir();
	sbi_prov *p = sbi_prov_alloc(".");
	sbi_key a = key_of("a"), b = key_of("b");
	CHECK(sbi_prov_write_record(p, dir, NULL) == SBI_OK); /* nothing ran: nothing written */
	CHECK(sbi_prov_record_load(dir) == NULL);
	CHECK(sbi_prov_add_read(p, "x.csv", "x.csv", &a) == SBI_OK);
	CHECK(sbi_prov_add_read(p, "y.csv", "y.csv", NULL) == SBI_OK);
	CHECK(sbi_prov_add_ran(p, &a) == SBI_OK);
	CHECK(sbi_prov_add_ran(p, &b) == SBI_OK);
	CHECK(sbi_prov_write_record(p, dir, NULL) == SBI_OK);
	json_t *rec = sbi_prov_record_load(dir), *ra = sbi_prov_record_reads(rec, &a);
	CHECK(json_array_size(ra) == 1);
	CHECK(strcmp(json_string_value(json_object_get(json_array_get(ra, 0), "rel")), "x.csv") == 0);
	CHECK(json_array_size(sbi_prov_record_reads(rec, &b)) == 0 && sbi_prov_record_reads(rec, &b) != NULL);
	sbi_key c = key_of("c");
	CHECK(sbi_prov_record_reads(rec, &c) == NULL);
	json_decref(rec);
	sbi_prov_free(p);
	char *file = sbi_path_join(dir, SBI_READS_RECORD);
	unlink(file);
	rmdir(dir);
	sbi_free(file);
}
