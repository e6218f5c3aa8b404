/* sbirun: the command-line front end.
 *
 *   sbirun [run] RECIPE [options]     run the analysis
 *   sbirun graph RECIPE [--format text|dot]
 *   sbirun sample RECIPE              draw from already trained estimators
 *   sbirun clean RECIPE
 *   sbirun lua SCRIPT [args...]       run a Lua script with the stdlib (tests, benchmarks)
 *   sbirun bundle RECIPE -o FILE      write an analysis bundle (bundle_cmd.c)
 *   sbirun show|verify FILE, sbirun unpack FILE DIR
 *   sbirun replay FILE                re-run a bundle with an empty cache and compare
 *   sbirun report OUTDIR              rewrite OUTDIR/report.html from the outputs (report.c)
 */
#include <errno.h>
#ifdef __linux__
#include <sched.h>
#endif
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bundle_cmd.h"
#include "lmpi.h"
#include "lstate.h"
#include "report.h"
#include "sbi/alloc.h"
#include "sbi_config.h"
#include "session.h"

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: sbirun [run] RECIPE [options]\n"
	    "       sbirun sample RECIPE [--set observation=PATH] [options]\n"
	    "       sbirun graph RECIPE [--format text|dot] [options]\n"
	    "       sbirun clean RECIPE [options]\n"
	    "       sbirun lua SCRIPT [args...]\n"
	    "       sbirun bundle RECIPE -o FILE [--compression C] [--without simulations] [--include PATH]\n"
	    "                     [options]\n"
	    "       sbirun show FILE | verify FILE | unpack FILE DIR   [limits]\n"
	    "       sbirun replay FILE [--trust] [--allow-native] [--jobs N] [--out DIR] [--quiet] [limits]\n"
	    "       sbirun report OUTDIR\n"
	    "       sbirun --version | --help\n"
	    "\n"
	    "options:\n"
	    "  --set NAME=VALUE  set a recipe parameter declared with sbi.param (repeatable)\n"
	    "  --cache DIR       artifact cache (default: .sbirun/ beside the recipe)\n"
	    "  --out DIR         output folder (default: sbirun-out/<recipe name>/)\n"
	    "  --jobs N          worker processes for simulations (default: the number of cores\n"
	    "                    this process may run on; results do not depend on it)\n"
	    "  --quiet           no progress output\n"
	    "  --format FMT      graph output: text (default) or dot\n"
	    "  -o, --output FILE bundle: the archive to write\n"
	    "  --compression C   bundle: zstd (default), gzip, xz or none\n"
	    "  --without simulations  bundle: leave out simulate steps' artifacts\n"
	    "  --include PATH    bundle: a file (or folder) outside the recipe's folder that steps read\n"
	    "  --trust           run a recipe from a bundle unrestricted (see docs/bundles.md)\n"
	    "  --allow-native    let a recipe from a bundle load its simulator plugins and programs\n"
	    "                    (see docs/security.md)\n"
	    "limits (show, verify, unpack, replay; SIZE in bytes, or with K, M, G, T):\n"
	    "  --max-manifest-size SIZE   largest manifest.json read (default 8M)\n"
	    "  --max-unpacked-size SIZE   largest total of the entries (default 8G)\n"
	    "\n"
	    "Under mpirun (mpirun -n N sbirun RECIPE), run spreads simulations, diagnostics' test points and\n"
	    "ensemble members over the N ranks: docs/cluster.md.\n"
	    "See docs/cli.md for details.\n");
}

typedef struct cli {
	const char *cmd;
	const char *format;
	sbi_session_opts o;
	sbi_bundle_cmd_opts b;
} cli;

static int
bad_usage(const char *msg, const char *arg)
{
	fprintf(stderr, "sbirun: %s%s%s\n", msg, arg ? ": " : "", arg ? arg : "");
	fprintf(stderr, "run 'sbirun --help' for usage\n");
	return 2;
}

static int
parse_jobs(const char *s, int *out)
{
	char *end;
	long v = strtol(s, &end, 10);
	if (*s == '\0' || *end != '\0' || v < 1 || v > 256)
		return -1;
	*out = (int)v;
	return 0;
}

/* The default --jobs: the cores this process may run on (its affinity
 * mask, which taskset, cgroups' cpusets and batch schedulers narrow), else
 * the online cores; 1 to 256. */
static int
default_jobs(void)
{
	long n = 0;
#ifdef __linux__
	cpu_set_t set;
	if (sched_getaffinity(0, sizeof set, &set) == 0)
		n = CPU_COUNT(&set);
#endif
	if (n < 1)
		n = sysconf(_SC_NPROCESSORS_ONLN);
	return n < 1 ? 1 : n > 256 ? 256 : (int)n;
}

/* A size: digits with an optional K, M, G or T (powers of 1024); -1 when
 * not one or 0. */
static int
parse_size(const char *s, uint64_t *out)
{
	char *end;
	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno == ERANGE)
		return -1;
	const char *units = "KMGT", *u = *end ? strchr(units, end[0] & ~0x20) : NULL;
	if (*end && (u == NULL || end[1] != '\0'))
		return -1;
	for (int k = u ? (int)(u - units) + 1 : 0; k > 0; k--) {
		if (v > UINT64_MAX / 1024)
			return -1;
		v *= 1024;
	}
	if (v == 0)
		return -1;
	*out = v;
	return 0;
}

/* --max-manifest-size / --max-unpacked-size V into lim; 1 when a is not
 * one of them, -1 when v is not a size. */
static int
parse_limit(const char *a, const char *v, sbi_bundle_limits *lim)
{
	uint64_t *to = strcmp(a, "--max-manifest-size") == 0 ? &lim->max_manifest :
	    strcmp(a, "--max-unpacked-size") == 0 ? &lim->max_unpacked : NULL;
	if (to == NULL)
		return 1;
	return v && parse_size(v, to) == 0 ? 0 : -1;
}

/* sbirun report OUTDIR: report.html again from OUTDIR's run.json and
 * outputs alone (no recipe, no cache). */
static int
report_cmd(int argc, char **argv)
{
	if (argc != 3 || argv[2][0] == '-')
		return bad_usage("report expects one output folder (sbirun report OUTDIR)", argc > 3 ? argv[3] : NULL);
	sbi_err err = { 0 };
	if (sbi_report_write(argv[2], &err) != SBI_OK) {
		fprintf(stderr, "sbirun: error: cannot write the report: %s\n", err.msg);
		return 1;
	}
	fprintf(stderr, "wrote %s/report.html\n", argv[2]);
	return 0;
}

/* sbirun show|verify FILE, sbirun unpack FILE DIR, with the limits. */
static int
bundle_reader(int argc, char **argv)
{
	sbi_bundle_limits lim = { 0 };
	const char *pos[2] = { NULL, NULL };
	int npos = 0, want = strcmp(argv[1], "unpack") == 0 ? 2 : 1;
	for (int i = 2; i < argc; i++) {
		int r = parse_limit(argv[i], i + 1 < argc ? argv[i + 1] : NULL, &lim);
		if (r < 0)
			return bad_usage("expected a size in bytes (with K, M, G or T) after", argv[i]);
		if (r == 0)
			i++;
		else if (argv[i][0] == '-' || npos == want)
			return bad_usage(want == 2 ? "unpack expects a bundle file and a folder" :
			    argv[1][0] == 's' ? "show expects one bundle file" : "verify expects one bundle file", argv[i]);
		else
			pos[npos++] = argv[i];
	}
	if (npos != want)
		return bad_usage(want == 2 ? "unpack expects a bundle file and a folder" :
		    argv[1][0] == 's' ? "show expects one bundle file" : "verify expects one bundle file", NULL);
	if (want == 2)
		return sbi_bundle_cmd_unpack(pos[0], pos[1], &lim);
	return argv[1][0] == 's' ? sbi_bundle_cmd_show(pos[0], &lim) : sbi_bundle_cmd_verify(pos[0], &lim);
}

/* Parses argv into c; returns -1 on success or an exit code. */
static int
parse(int argc, char **argv, cli *c, const char **sets, const char **includes)
{
	int i = 1;
	c->cmd = "run";
	c->format = "text";
	c->o.jobs = default_jobs();
	if (i < argc && (strcmp(argv[i], "run") == 0 || strcmp(argv[i], "graph") == 0 ||
	    strcmp(argv[i], "clean") == 0 || strcmp(argv[i], "sample") == 0 || strcmp(argv[i], "bundle") == 0 ||
	    strcmp(argv[i], "replay") == 0))
		c->cmd = argv[i++];
	for (; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		int takes = strcmp(a, "--set") == 0 || strcmp(a, "--cache") == 0 || strcmp(a, "--out") == 0 ||
		    strcmp(a, "--jobs") == 0 || strcmp(a, "--format") == 0 || strcmp(a, "-o") == 0 ||
		    strcmp(a, "--output") == 0 || strcmp(a, "--compression") == 0 || strcmp(a, "--without") == 0 ||
		    strcmp(a, "--include") == 0 || strcmp(a, "--max-manifest-size") == 0 ||
		    strcmp(a, "--max-unpacked-size") == 0;
		if (takes && v == NULL)
			return bad_usage("option needs a value", a);
		int lim = parse_limit(a, v, &c->b.lim);
		if (lim < 0)
			return bad_usage("expected a size in bytes (with K, M, G or T) after", a);
		if (lim == 0) {
			if (strcmp(c->cmd, "replay") != 0)
				return bad_usage("an option of show, verify, unpack and replay", a);
		} else if (strcmp(a, "--include") == 0) {
			if (strcmp(c->cmd, "bundle") != 0)
				return bad_usage("--include is an option of bundle", NULL);
			includes[c->b.nincludes++] = v;
		} else if (strcmp(a, "--set") == 0)
			sets[c->o.nsets++] = v;
		else if (strcmp(a, "--cache") == 0)
			c->o.cache_dir = v;
		else if (strcmp(a, "--out") == 0)
			c->o.out_dir = v;
		else if (strcmp(a, "--format") == 0)
			c->format = v;
		else if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0)
			c->b.output = v;
		else if (strcmp(a, "--compression") == 0)
			c->b.compression = v;
		else if (strcmp(a, "--without") == 0) {
			if (strcmp(v, "simulations") != 0)
				return bad_usage("--without expects 'simulations', got", v);
			c->b.without_simulations = 1;
		}
		else if (strcmp(a, "--jobs") == 0) {
			if (parse_jobs(v, &c->o.jobs) != 0)
				return bad_usage("--jobs expects an integer from 1 to 256, got", v);
		} else if (strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0) {
			c->o.quiet = 1;
			continue;
		} else if (strcmp(a, "--trust") == 0) {
			c->o.trust = 1;
			continue;
		} else if (strcmp(a, "--allow-native") == 0) {
			c->o.allow_native = 1;
			continue;
		} else if (a[0] == '-' && a[1] != '\0')
			return bad_usage("unknown option", a);
		else if (c->o.recipe == NULL) {
			c->o.recipe = a;
			continue;
		} else
			return bad_usage("unexpected argument", a);
		i++;
	}
	if (c->o.recipe == NULL)
		return bad_usage(strcmp(c->cmd, "replay") == 0 ? "replay: no bundle file given" : "no recipe given", NULL);
	if (strcmp(c->cmd, "replay") == 0 && (c->o.nsets || c->o.cache_dir))
		return bad_usage("replay: --set and --cache cannot be given (it uses the bundle's --set values and "
		    "an empty cache)", NULL);
	if (strcmp(c->cmd, "bundle") == 0 && c->b.output == NULL)
		return bad_usage("bundle: no output file given (-o FILE)", NULL);
	if (strcmp(c->cmd, "bundle") != 0 && (c->b.output || c->b.compression || c->b.without_simulations))
		return bad_usage("-o, --compression and --without are options of bundle", NULL);
	return -1;
}

/* sbirun lua SCRIPT args...: arg table as in lua.c. */
static int
run_script(int argc, char **argv)
{
	if (argc < 3)
		return bad_usage("lua: no script given", NULL);
	sbi_runctx ctx = { 0 };
	ctx.jobs = 1;
	ctx.g = sbi_graph_alloc("sbirun lua"); /* steps a script declares (never run) */
	lua_State *L = ctx.g ? sbi__state_new(&ctx, 0) : NULL;
	if (L == NULL) {
		sbi_graph_free(ctx.g);
		return 1;
	}
	lua_createtable(L, argc, 0);
	for (int i = 2; i < argc; i++) {
		lua_pushstring(L, argv[i]);
		lua_seti(L, -2, i - 2);
	}
	lua_setglobal(L, "arg");
	int rc = luaL_loadfile(L, argv[2]);
	if (rc == LUA_OK) {
		for (int i = 3; i < argc; i++)
			lua_pushstring(L, argv[i]);
		rc = sbi__pcall(L, argc - 3, 0);
	}
	if (rc != LUA_OK)
		fprintf(stderr, "sbirun: error: %s\n", lua_tostring(L, -1));
	ctx.closing = 1; /* finalizers may not make userdata (sbi__refuse_closing) */
	lua_close(L);
	sbi_graph_free(ctx.g);
	return rc == LUA_OK ? 0 : 1;
}

/* A rank other than 0 under MPI (docs/cluster.md): `run` loads the same
 * recipe, quietly, and serves rank 0's chunks; under other commands, which
 * rank 0 runs alone, it only waits for rank 0's word to stop. */
static int
mpi_worker(cli *c)
{
	int code = 0;
	sbi_session *s = NULL;
	if (strcmp(c->cmd, "run") == 0) {
		c->o.quiet = 1;
		s = sbi_session_load(&c->o, &code);
	}
	code = sbi__mpi_serve(s);
	sbi_session_close(s);
	sbi__mpi_finish();
	return code;
}

int
main(int argc, char **argv)
{
	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0)) {
		usage(stdout);
		return 0;
	}
	if (argc >= 2 && strcmp(argv[1], "--version") == 0) {
		printf("sbirun %s (%s)\n", SBI_VERSION, LUA_RELEASE);
		return 0;
	}
	if (argc >= 2 && strcmp(argv[1], "lua") == 0)
		return run_script(argc, argv);
	/* A file size limit (ulimit -f) makes writes fail with EFBIG, reported
	 * like any write error, instead of killing the process. */
	signal(SIGXFSZ, SIG_IGN);
	if (argc >= 2 && strcmp(argv[1], "report") == 0)
		return report_cmd(argc, argv);
	if (argc >= 2 && (strcmp(argv[1], "show") == 0 || strcmp(argv[1], "verify") == 0 ||
	    strcmp(argv[1], "unpack") == 0))
		return bundle_reader(argc, argv);
	const char **sets = calloc((size_t)argc, sizeof *sets), **includes = calloc((size_t)argc, sizeof *includes);
	cli c = { 0 };
	int code = sets && includes ? parse(argc, argv, &c, sets, includes) : 1;
	if (code >= 0) {
		free(sets);
		free(includes);
		return code;
	}
	c.o.sets = sets;
	c.b.includes = includes;
	if (strcmp(c.cmd, "replay") == 0) {
		code = sbi_bundle_cmd_replay(c.o.recipe, &c.o, &c.b.lim);
		free(sets);
		free(includes);
		return code;
	}
	if (sbi__mpi_init(&argc, &argv) != 0) {
		free(sets);
		free(includes);
		return 1;
	}
	if (sbi__mpi_rank() != 0) {
		code = mpi_worker(&c);
		free(sets);
		free(includes);
		return code;
	}
	sbi_session *s = sbi_session_load(&c.o, &code);
	if (s != NULL) {
		if (strcmp(c.cmd, "graph") == 0)
			code = sbi_session_graph(s, c.format);
		else if (strcmp(c.cmd, "clean") == 0)
			code = sbi_session_clean(s);
		else if (strcmp(c.cmd, "sample") == 0)
			code = sbi_session_sample(s);
		else if (strcmp(c.cmd, "bundle") == 0)
			code = sbi_bundle_cmd_create(s, &c.b);
		else
			code = sbi_session_run(s);
	}
	sbi_session_close(s);
	sbi__mpi_finish();
	free(sets);
	free(includes);
	return code;
}
