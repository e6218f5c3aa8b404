/* Markov chain Monte Carlo over batched log densities.
 *
 * The samplers draw from densities known up to a constant: posteriors
 * under a learned likelihood or likelihood ratio (NLE, NRE) or under an
 * exact one. A density evaluation may run a neural network, so every
 * sampler evaluates the points of all its chains in one callback
 * (sbi_logdens_fn) per stage instead of one call per point.
 *
 * The design follows GSL's init/iterate/test: sbi_mcmc_alloc, then
 * sbi_mcmc_init with starting points, then sbi_mcmc_iterate once per sweep,
 * so the driver (C or Lua) owns the loop and can log, checkpoint or stop
 * between sweeps; sbi_mcmc_rhat and sbi_mcmc_ess are the convergence tests.
 * sbi_mcmc_run is a ready-made driver.
 *
 * Samplers:
 *   SBI_MCMC_SLICE     coordinate-wise slice sampling with stepping out and
 *                      shrinkage (Neal 2003), all chains in lock step.
 *   SBI_MCMC_ENSEMBLE  the affine-invariant stretch move (Goodman and Weare
 *                      2010, a = 2), split ensemble; the chains are the
 *                      walkers and need nchains >= 2 d + 2.
 *
 * Randomness comes from stream (seed, P, 0) for a sampler and (seed, P, 1)
 * for sbi_mcmc_pick_starts, where P = sbi_rng_round_purpose(SBI_STREAM_METHOD,
 * round) (round 0 outside sequential inference), so results are
 * bit-identical given the seed, the round and the callback's values. */
#ifndef SBI_MCMC_H
#define SBI_MCMC_H

#include <stddef.h>
#include <stdint.h>

#include "sbi/err.h"

/* Batched log density: out[i] = log p(theta_i) for the n points in theta
 * (row-major n x d), up to a constant; -INFINITY outside the support (NaN
 * is read as -INFINITY, +INFINITY is an error). Returns SBI_OK or an error
 * code; then sampling stops and returns that code (a positive code becomes
 * SBI_EINVAL). The callback may keep its own message in ud. */
typedef int (*sbi_logdens_fn)(void *ud, const double *theta, size_t n, size_t d, double *out);

/* A sampler of nchains chains in d dimensions (opaque). */
typedef struct sbi_mcmc sbi_mcmc;

/* The kinds of sampler (see the top of this file). */
typedef enum sbi_mcmc_kind {
	SBI_MCMC_SLICE,
	SBI_MCMC_ENSEMBLE,
} sbi_mcmc_kind;

/* A sampler of the density f(ud, ...); all memory the sampler needs is
 * allocated here. NULL with err set on bad arguments (d or nchains zero,
 * f NULL, too few walkers for the ensemble: SBI_EINVAL) or out of memory
 * (SBI_ENOMEM). Free with sbi_mcmc_free. */
sbi_mcmc *sbi_mcmc_alloc(sbi_mcmc_kind kind, size_t d, size_t nchains, sbi_logdens_fn f,
    void *ud, uint64_t seed, uint64_t round, sbi_err *err);

/* Frees m; NULL is fine. */
void sbi_mcmc_free(sbi_mcmc *m);

/* The name of a kind: "slice" or "ensemble". */
const char *sbi_mcmc_kind_name(sbi_mcmc_kind kind);

/* Sets the chains to start (nchains x d, row-major) and evaluates them in
 * one callback. Every start must have finite coordinates and a finite log
 * density, else SBI_EINVAL with a message naming the chain (1-based). The
 * ensemble also needs starts whose affine hull is d-dimensional, since the
 * stretch move never leaves it. The slice widths start at the standard
 * deviation of the starts per coordinate (1 where that is zero). May be
 * called again to restart. */
int sbi_mcmc_init(sbi_mcmc *m, const double *start, sbi_err *err);

/* One sweep. Slice: one update of every coordinate of every chain, each
 * coordinate costing about (expansions + shrinks + 1) callbacks for all
 * chains together. Ensemble: one stretch move of every walker, two
 * callbacks. Allocates nothing. On a callback error the chains keep
 * consistent states (every position matches its log density) and the
 * sweep may be retried. SBI_EINVAL before sbi_mcmc_init. */
int sbi_mcmc_iterate(sbi_mcmc *m, sbi_err *err);


/* The current positions, nchains x d. */
const double *sbi_mcmc_state(const sbi_mcmc *m);

/* The log densities of the current positions, nchains entries. */
const double *sbi_mcmc_logdens(const sbi_mcmc *m);

/* The total number of points evaluated so far, init included. */
uint64_t sbi_mcmc_evaluations(const sbi_mcmc *m);

/* The number of callbacks so far, init included. */
uint64_t sbi_mcmc_calls(const sbi_mcmc *m);

/* The slice step widths, d entries; NULL for the ensemble. */
const double *sbi_mcmc_width(const sbi_mcmc *m);

/* The fraction of updates that moved since init: the acceptance rate of
 * the stretch move, or for slice sampling 1 minus the fraction of
 * coordinate updates that hit the shrinkage cap and kept the point. NaN
 * before the first sweep. */
double sbi_mcmc_acceptance(const sbi_mcmc *m);

/* A driver: warmup sweeps with step-width adaptation on (each slice
 * coordinate update rescales that coordinate's width by 2 ne / (ne + nc),
 * clamped to [1/2, 2], where ne and nc count the expansions and
 * contractions of all chains: the rule of Karamanis and Beutler 2021,
 * which balances them; adapting breaks detailed balance, hence warm-up
 * only; the ensemble has nothing to adapt), then,
 * with adaptation off, keeps the states of all chains after every thin-th
 * sweep until nsamples rows are filled. Rows are chain-interleaved
 * (sweep-major, chain-minor: row t * nchains + c is chain c's t-th kept
 * state), so the last kept sweep may be partial; sbi_mcmc_draws_by_chain
 * reorders them for the diagnostics. m must have been initialized;
 * SBI_EINVAL when thin is zero. */
int sbi_mcmc_run(sbi_mcmc *m, size_t warmup, size_t thin, size_t nsamples, double *samples,
    sbi_err *err);

/* Copies the complete sweeps of chain-interleaved samples (as written by
 * sbi_mcmc_run) into draws laid out chains x iterations x d, the layout of
 * sbi_mcmc_rhat and sbi_mcmc_ess, and returns the number of iterations,
 * nsamples / nchains (a partial last sweep is dropped). */
size_t sbi_mcmc_draws_by_chain(const double *samples, size_t nsamples, size_t nchains, size_t d,
    double *draws);

/* Starting points from a proposal (sbi's "resample" init): given m
 * candidates cand (m x d, e.g. prior draws) and their log densities,
 * chooses nchains of them into start (nchains x d) by sampling-importance-
 * resampling with weights proportional to exp(logdens), using stream
 * (seed, sbi_rng_round_purpose(SBI_STREAM_METHOD, round), 1). Draws are without replacement, so the
 * starts are distinct as the ensemble needs; only when fewer than nchains
 * candidates have a finite log density are they reused (the draws start
 * over once all are taken). SBI_EINVAL when no candidate has a finite log
 * density; SBI_ENOMEM when out of memory. */
int sbi_mcmc_pick_starts(const double *cand, const double *logdens, size_t m, size_t d,
    size_t nchains, uint64_t seed, uint64_t round, double *start, sbi_err *err);

/* Classic split-R-hat (Gelman et al., BDA3) per dimension, over draws laid
 * out chains x iterations x d (draws[(c * niter + t) * d + j]): every chain
 * is split into halves of niter / 2 draws (the middle draw of an odd niter
 * is dropped) and rhat[j] = sqrt(var+ / W). Near 1 for mixed chains; NaN
 * with fewer than 4 iterations or when a dimension is constant. */
void sbi_mcmc_rhat(const double *draws, size_t nchains, size_t niter, size_t d, double *rhat);

/* Effective sample size per dimension over the same layout: split chains
 * combined as in Vehtari et al. (2021) and Stan, rho_t = 1 - (W - mean of
 * the chains' autocovariances at lag t) / var+, summed by Geyer's initial
 * monotone sequence estimator; at most N log10(N) for N draws. Draws are
 * not rank-normalized. Allocates nothing: lags are summed directly, which
 * costs O(N) per lag until the sequence is truncated. NaN with fewer than
 * 4 iterations or when a dimension is constant. */
void sbi_mcmc_ess(const double *draws, size_t nchains, size_t niter, size_t d, double *ess);

/* Chains that sit in separate modes. A sampler that does not move between
 * the modes of a multimodal density leaves each chain in one of them: the
 * split R-hat over all chains is then large whatever the warm-up, while
 * the chains of each mode agree. This groups the chains of draws (chains x
 * iterations x d) into modes: two chains are linked when in every
 * dimension their means differ by at most SBI_MCMC_MODE_GAP pooled
 * within-chain standard deviations, and a mode is a set of chains
 * connected by links. mode[c] (nchains entries) is chain c's mode,
 * numbered from 0 in order of each mode's first chain. Returns the
 * number of modes, and sets *rhat_within to the largest split R-hat over
 * the modes and dimensions, each mode's chains taken alone (the two halves
 * of a mode's single chain); NaN when one is undefined (fewer than 4
 * iterations, a constant dimension). With fewer than 4 iterations every
 * chain is in mode 0. 0 with *rhat_within NaN when out of memory. */
#define SBI_MCMC_MODE_GAP 3.0
size_t sbi_mcmc_modes(const double *draws, size_t nchains, size_t niter, size_t d, size_t *mode,
    double *rhat_within);

#endif
