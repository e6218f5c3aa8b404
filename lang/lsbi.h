/* Internal declarations shared by the Lua embedding (lang/). Only lang/
 * includes <lua.h>; the engine never does. */
#ifndef SBI_LSBI_H
#define SBI_LSBI_H

#include <gsl/gsl_rng.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "sbi/artifact.h"
#include "sbi/cache.h"
#include "sbi/graph.h"
#include "sbi/mat.h"
#include "sbi/prior.h"
#include "sbi/provenance.h"

#define SBI_MT_MAT "sbi.Mat"
#define SBI_MT_RNG "sbi.Rng"
#define SBI_MT_PRIOR "sbi.Prior"

/* A Mat userdata: owns m unless borrowed. A borrowed Mat is either a
 * read-only view of an artifact's matrix, holding its own reference to
 * the artifact (owner, dropped by its __gc) so the data lives as long as
 * the view, whatever order finalizers run in at exit; or a simulator's
 * view of a chunk buffer, cleared (m = NULL) after the call. */
typedef struct l_mat {
	sbi_mat *m;
	sbi_artifact *owner; /* a view's reference, or NULL */
	int borrowed;
	int readonly; /* set, set_row raise (views of artifacts) */
	int released; /* closed with <close>: unusable; m is freed by __gc only, since a C
	               * function that called back into Lua may still hold m (and the userdata) */
} l_mat;

/* What a run shares with the Lua side: stored as a light userdata in the
 * registry under SBI_RUNCTX, read by primitives that need the cache. */
#define SBI_RUNCTX "sbi.runctx"
typedef struct sbi_runctx {
	sbi_cache *cache; /* NULL while only loading or printing the graph */
	sbi_graph *g;     /* the recipe's steps, declared into it as the recipe loads (borrowed) */
	sbi_prov *prov;   /* what the run reads and loads (borrowed), or NULL: nothing recorded */
	sbi_node *node;   /* the node being run, or NULL */
	int in_simulator; /* a simulator call is under way */
	int refused;      /* the sandbox refused a function (sbi__refuse_in_step) */
	int jobs;
	int quiet;
	long chunk_size_default;
	int closing;      /* lua_close is under way: finalizers run */
} sbi_runctx;

sbi_runctx *sbi__runctx(lua_State *L);

/* Raises when the state is closing (a finalizer at lua_close): a userdata
 * made then would never be finalized, so whatever it owns would leak.
 * Every constructor of a userdata with __gc calls it before allocating. */
void sbi__refuse_closing(lua_State *L);

/* l_mat.c */
void sbi__open_mat(lua_State *L);
l_mat *sbi__check_mat(lua_State *L, int idx);
/* Pushes a new Mat owning m (freed here if the push fails). */
void sbi__push_mat(lua_State *L, sbi_mat *m);
/* Pushes a new nrow x ncol Mat (sbi_mat_alloc) that owns its matrix;
 * raises when out of memory. [..] -> [.., Mat] */
sbi_mat *sbi__push_new_mat(lua_State *L, size_t nrow, size_t ncol);
/* Pushes a Mat that borrows m (writable; the caller clears it). */
void sbi__push_mat_borrowed(lua_State *L, sbi_mat *m);
/* Pushes a read-only Mat viewing m, an artifact's matrix; owner is the
 * index of an artifact box (l_artifact.c): the view takes its own reference. */
void sbi__push_mat_view(lua_State *L, sbi_mat *m, int owner);
/* Turns the Mat at idx, whose matrix was just moved into an artifact, into
 * a read-only view with its own reference to the artifact in the box at
 * owner. */
void sbi__mat_make_view(lua_State *L, int idx, int owner);
/* A new matrix from a Mat userdata or a table of numbers / of rows. */
sbi_mat *sbi__to_mat(lua_State *L, int idx, const char *what);

/* l_rng.c */
void sbi__open_rng(lua_State *L);
gsl_rng *sbi__check_rng(lua_State *L, int idx);
/* Pushes a new Rng positioned at stream (seed, purpose, index). */
gsl_rng *sbi__push_rng(lua_State *L, uint64_t seed, uint64_t purpose, uint64_t index);

/* l_prior.c */
void sbi__open_prior(lua_State *L);
sbi_prior *sbi__check_prior(lua_State *L, int idx);

/* l_hash.c: the canonical hash of a Lua value (see the file for what goes in). */
void sbi__open_hash(lua_State *L);
int sbi__hash_value(lua_State *L, int idx, sbi_key *out);

/* The parts of sbi.core, each adding its functions to the table at the
 * top: [core] -> [core]. l_open.c (luaopen_sbi_core) calls them all. */
void sbi__open_core(lua_State *L);       /* l_core.c: simulate, clock */
void sbi__open_stats(lua_State *L);      /* l_stats.c: summary, scales, ABC */
void sbi__open_files(lua_State *L);      /* l_files.c: read_matrix, write_samples, ... */
void sbi__open_flow(lua_State *L);       /* l_flow.c: sbi.Flow, flow_train */
void sbi__open_classifier(lua_State *L); /* l_classifier.c: sbi.Classifier */
void sbi__open_mlp(lua_State *L);        /* l_mlp.c: sbi.MLP, mlp_train, autoencoder_train */
void sbi__open_mcmc(lua_State *L);       /* l_mcmc.c: core.mcmc */
void sbi__open_plot(lua_State *L);       /* l_plot.c: plot_corner, plot_curve, ... */
void sbi__open_summary(lua_State *L);    /* l_summary.c: linear_map, covariance, pca, moped_weights */
void sbi__open_c2st(lua_State *L);       /* l_c2st.c: core.c2st */
void sbi__open_diagnose(lua_State *L);   /* l_diagnose.c: diagnose_ranks, binomial_band, ... */

/* l_ode.c: core.ode, ODE initial value problems for simulators. */
void sbi__open_ode(lua_State *L);

/* l_graph.c: the Lua side of the engine's step graph (ctx->g). The
 * registry's SBI_REG_INTERNAL table holds what only the stdlib may call
 * (the stdlib's chunks get it from their loader, l_state.c): node(n)
 * adds the node table n to the graph, output(name, node) an output.
 * SBI_REG_NODES maps a node's id + 1 to its Lua table: the options the
 * key hashes, the run function and the stdlib's own fields. */
#define SBI_REG_INTERNAL "sbi.internal"
#define SBI_REG_NODES "sbi.nodes"
void sbi__open_graph(lua_State *L);
/* A new graph whose keys start with the engine's identity (version,
 * stdlib hash, code hash); caller frees; NULL when out of memory. */
sbi_graph *sbi__graph_new(void);
/* Pushes the Lua table of node id. [] -> [node] */
void sbi__push_node(lua_State *L, size_t id);
/* Hashes every node's options into the graph and computes the keys
 * (lua_CFunction, raises on error). [] -> [] */
int sbi__graph_key(lua_State *L);
/* Pushes the outputs as a list of { name =, node = }. [] -> [outputs] */
void sbi__push_outputs(lua_State *L);

/* l_sim.c */
int sbi__l_simulate(lua_State *L);

/* l_state.c: the restricted environment of recipes from bundles. When the
 * registry holds SBI_REG_ALLOWED_ROOT (a real path), the sbi.core file
 * functions and require read only files whose real path is inside it, and
 * core.write_samples writes only into SBI_REG_ALLOWED_OUT (docs/bundles.md). */
#define SBI_REG_ALLOWED_ROOT "sbi.allowed_root"
#define SBI_REG_ALLOWED_OUT "sbi.allowed_out"

/* l_prov.c: provenance (provenance.h) in ctx->prov, raising when out of
 * memory. The bundled copy of path in an unpacked bundle, else path
 * (borrowed from the record or path). */
const char *sbi__prov_map(lua_State *L, const char *path);
/* Records that core.read_matrix / core.file_hash read found for path. */
void sbi__prov_read(lua_State *L, const char *path, const char *found);
/* Records a module file require loaded. */
void sbi__prov_module(lua_State *L, const char *path);
/* Adds internal.data_file (sbi.observation's files) to SBI_REG_INTERNAL. */
void sbi__open_prov(lua_State *L);

/* 1 when the recipe may read path; else 0 with the reason pushed. A path
 * that does not exist is allowed (reading it fails anyway). */
int sbi__check_read(lua_State *L, const char *path);

/* 1 when the recipe may write into dir; else 0 with the reason pushed. */
int sbi__check_write(lua_State *L, const char *dir);

/* l_core.c: argument checks. The userdata of type tname at idx, for a value read from a table (idx
 * < 0): raises "what must be a tname, got ..." (an argument error would
 * say "bad argument #-1"). */
void *sbi__check_field_udata(lua_State *L, int idx, const char *tname, const char *what);

/* luaL_argerror for an argument (idx > 0); a plain error for a value read
 * from a table (idx < 0). */
int sbi__argerror(lua_State *L, int idx, const char *msg);

/* l_udata.c: luaL_newmetatable that also locks the metatable (__metatable), so
 * getmetatable cannot reach __gc and the like from a recipe. Every
 * userdata metatable is made with it. */
int sbi__newmetatable(lua_State *L, const char *tname);

/* Registers the userdata type tname (sbi__newmetatable): its metamethods
 * meta (__gc, __close, __tostring) and, unless methods is NULL, its methods
 * as __index. [..] -> [..] */
void sbi__new_type(lua_State *L, const char *tname, const luaL_Reg *meta, const luaL_Reg *methods);
/* sbi__new_type whose metamethods share the nup values on top of the
 * stack as upvalues (popped). [.., up..] -> [..] */
void sbi__new_type_up(lua_State *L, const char *tname, const luaL_Reg *meta, const luaL_Reg *methods, int nup);

/* Pushes a new zeroed userdata of size bytes that owns C memory, so a
 * binding holds no C memory across calls that can raise: free_fn releases
 * what the box holds and is both its __gc and its __close (so it must
 * leave the box empty and may run twice); __tostring gives tname. Raises
 * when the state is closing (sbi__refuse_closing). [..] -> [.., box] */
void *sbi__push_box(lua_State *L, size_t size, const char *tname, lua_CFunction free_fn);

/* Pushes a new zeroed userdata of size bytes with the metatable tname,
 * registered on first use with the metamethods meta (sbi__new_type). The
 * caller calls sbi__refuse_closing first if meta has a __gc that frees.
 * [..] -> [.., u] */
void *sbi__push_udata(lua_State *L, size_t size, const char *tname, const luaL_Reg *meta);

/* Raises naming fn when a simulator runs (or, with steps_too, any step):
 * fn is nondeterministic and its value would escape the cache key. */
void sbi__refuse_in_step(lua_State *L, const char *fn, int steps_too);

/* Adds core.stderr, core.stdout and core.where to the table at -1: what
 * the stdlib needs of io and debug, which a sandboxed state lacks. */
void sbi__open_console(lua_State *L);

/* l_open.c: the sbi.core module. */
int luaopen_sbi_core(lua_State *L);

/* l_core.c: n numbers from a table or a Mat with n elements at idx, into a new
 * userdata on the stack (collected by the GC); raises naming what. */
double *sbi__to_vector(lua_State *L, int idx, size_t n, const char *what);
/* Scratch room for n doubles: a new userdata (collected by the GC).
 * [..] -> [.., buf] */
double *sbi__scratch(lua_State *L, size_t n);
/* Pushes the list { v[0], ..., v[n - 1] }. [..] -> [.., t] */
void sbi__push_numbers(lua_State *L, const double *v, size_t n);

/* l_artifact.c: converting artifacts. Pushes a table for a: its matrices as read-only
 * views that hold a reference to a (sbi_artifact_retain), so a stays
 * alive while any of them is reachable. */
void sbi__push_artifact(lua_State *L, sbi_artifact *a);
/* Pushes a new owner of one reference to a (retained here). */
void sbi__push_artifact_ref(lua_State *L, sbi_artifact *a);
/* A new artifact from the table at idx; NULL with a Lua error raised on
 * bad values (never returns NULL otherwise). Mats are moved, not copied,
 * and become read-only views of it; views of other artifacts are copied. */
sbi_artifact *sbi__to_artifact(lua_State *L, int idx, const char *what);

/* The stdlib sources compiled into the binary (generated). */
typedef struct sbi_stdlib_file {
	const char *module; /* "sbi", "sbi.prior", ... */
	const char *path;   /* "sbi/init.lua", ... */
	const char *source;
	size_t len;
} sbi_stdlib_file;
extern const sbi_stdlib_file sbi_stdlib_files[];
extern const size_t sbi_stdlib_nfiles;

/* 16 hex digits: the hash of the engine's and sbi.core's sources
 * (generated by lang/embed.c --hash; the list is in lang/meson.build). */
extern const char sbi_code_hash[];

#endif
