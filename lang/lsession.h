/* Internal to the session's files (l_session.c, l_run.c, l_runjson.c):
 * the session itself and what they share. */
#ifndef SBI_LSESSION_H
#define SBI_LSESSION_H

#include <jansson.h>

#include "lstate.h"
#include "session.h"

struct sbi_session {
	sbi_session_opts o;
	lua_State *L;
	sbi_runctx ctx;
	sbi_graph *g;     /* owned; the Lua state borrows it (ctx.g) */
	sbi_prov *prov;   /* owned; what the run read and loaded (ctx.prov) */
	sbi_cache *cache;
	char *recipe_dir, *recipe_name, *cache_dir, *out_dir; /* owned */
	char *root; /* owned: the real path a restricted recipe may read in, or NULL */
	double t0;
	int sampling; /* `sbirun sample`: only observations and *.sample steps may run */
};

/* l_session.c. Prints "sbirun: error: msg" with control characters
 * escaped (messages quote recipes, which may come from a bundle). */
void sbi__print_error(const char *msg);
/* Pushes require("sbi"). [] -> [sbi] */
void sbi__push_sbi(lua_State *L);
/* Calls sbi[fname](args...) protected; prints the error and returns 1 on
 * failure. [args] -> [results] (nres of them, none on failure) */
int sbi__call_sbi(sbi_session *s, const char *fname, int nargs, int nres);

/* l_runjson.c: writes OUT/run.json; 1 after printing why it could not. */
int sbi__write_run_json(sbi_session *s, const sbi_executor *x, int ok);
/* The message of the gates that failed (sbi._gate_message, set when the
 * outputs were written), or NULL. The string stays alive in sbi. */
const char *sbi__gate_message(lua_State *L);
/* The exit code of a run whose outputs were written but a gate failed. */
#define SBI_EXIT_GATE 3
/* Prints the graph with the nodes' states as text or as a dot digraph. */
void sbi__print_graph(const sbi_graph *g, int dot);

#endif
