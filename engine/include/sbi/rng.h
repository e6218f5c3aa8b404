/* Random number streams.
 *
 * Every random draw in sbirun comes from a stream identified by
 * (seed, purpose, index): simulation i of a node with seed s draws its
 * parameters from stream (s, SBI_STREAM_PRIOR, i) and its noise from
 * (s, SBI_STREAM_SIM, i) (in round r of sequential inference, the purposes
 * of sbi_rng_round_purpose). Results therefore do not depend on the order in
 * which simulations run or on how they are spread over worker processes.
 *
 * The generator is xoshiro256** wrapped as a gsl_rng_type, so that all of
 * GSL's distributions draw from it. Its 256-bit state is set in O(1) from a
 * SplitMix64 hash of the stream identity; GSL's own generators either
 * take only a 32-bit seed (taus2: 10^6 streams would collide) or are slow
 * to seed (mt19937: a 2.5 KiB state), which would dominate cheap simulators.
 */
#ifndef SBI_RNG_H
#define SBI_RNG_H

#include <stdint.h>
#include <gsl/gsl_rng.h>

/* Purposes that separate the streams of one seed. */
enum sbi_stream {
	SBI_STREAM_PRIOR = 1,  /* parameter draws */
	SBI_STREAM_SIM = 2,    /* simulator noise */
	SBI_STREAM_METHOD = 3, /* a method's own randomness (resampling, ...) */
	SBI_STREAM_OBS = 4,    /* simulated observations */
	/* 5: sbi.abc.smc's perturbations (stdlib/sbi/abc.lua) */
	SBI_STREAM_DIAG = 6,   /* diagnostics' test-set posteriors (sbi/diagnose.h) */
	SBI_STREAM_DIAG_REF = 7, /* diagnostics' TARP reference points */
	/* 8: sbi.abc.smc{ scheme = "sbi" }'s proposals and resampling (stdlib/sbi/abc_smc_sbi.lua) */
};

/* Rounds of sequential inference have streams of their own: the purpose
 * of round r is purpose + r * 2^32, so round 0 keeps the plain purposes
 * (and every stream a single-round run has always used) and no round's
 * purpose equals another purpose. */
#define SBI_RNG_MAX_ROUND 1000000000

static inline uint64_t
sbi_rng_round_purpose(uint64_t purpose, uint64_t round)
{
	return purpose + (round << 32);
}

/* The gsl_rng_type of the generator ("sbi-xoshiro256**"). */
extern const gsl_rng_type *sbi_rng_xoshiro256;

/* A generator of type sbi_rng_xoshiro256; NULL when out of memory.
 * Free with gsl_rng_free. */
gsl_rng *sbi_rng_alloc(void);

/* Sets r (of type sbi_rng_xoshiro256) to the start of stream
 * (seed, purpose, index). */
void sbi_rng_set_stream(gsl_rng *r, uint64_t seed, uint64_t purpose, uint64_t index);

/* The next raw 64-bit output of r (of type sbi_rng_xoshiro256). */
uint64_t sbi_rng_next64(gsl_rng *r);

#endif
