/* Simulators that are not Lua functions (l_native.c, docs/simulators.md):
 * C plugins loaded with dlopen and external programs speaking a line
 * protocol. l_sim.c draws the thetas and keeps chunks, failures and the
 * cache exactly as for a Lua simulator; this module only turns a chunk's
 * theta rows into x rows. */
#ifndef SBI_LNATIVE_H
#define SBI_LNATIVE_H

#include "lsbi.h"
#include "sbi/pool.h"

/* The registry key whose value (the bundle folder) says native simulators
 * are refused: a recipe from an unpacked bundle without --allow-native. */
#define SBI_REG_NATIVE_REFUSED "sbi.native_refused"

typedef struct sbi_native sbi_native;

/* One row's outcome; kind is 0 (kept) or l_sim.c's FAIL_ERROR, FAIL_NAN,
 * FAIL_LENGTH (1, 2, 3), or -1 for a row not run (after a failure when
 * the run stops at the first). */
typedef struct sbi_native_row {
	int kind;
	char msg[256];
} sbi_native_row;

/* Reads spec.native (at spec) for dtheta parameters and dx values: loads
 * the plugin or checks the program, refusing what the policy refuses.
 * Pushes the box that owns it and returns it; pushes nothing and returns
 * NULL when spec.native is nil. Raises on errors, naming label.
 * [..] -> [.., box] | [..] */
sbi_native *sbi__native_open(lua_State *L, int spec, const char *label, size_t dtheta, size_t dx);

/* Reports the rows of the chunk finished so far (after each batch). */
typedef void (*sbi_native_tick)(void *ud, uint64_t done);

/* Runs the m rows of theta (simulations first .. first + m - 1, whose
 * random streams are (seed, purpose, index)) into the rows of x, with
 * their outcomes in rows[0..m-1]. Updates slot's progress and calls tick
 * (ud) after each batch. With stop set it returns after the batch of the
 * first failure. SBI_OK, or an error that fails the whole chunk (a
 * plugin's init, a program that cannot start) with err set. */
int sbi__native_run(sbi_native *nv, const sbi_mat *theta, sbi_mat *x, const uint64_t stream[3],
    sbi_native_row *rows, sbi_pool_slot *slot, int stop, sbi_native_tick tick, void *ud, sbi_err *err);

/* Adds internal.native_file to SBI_REG_INTERNAL (for sbi.simulator). */
void sbi__open_native(lua_State *L);

#endif
