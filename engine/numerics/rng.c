/* xoshiro256** as a gsl_rng_type, with O(1) stream seeding (see rng.h).
 * The generator is Blackman and Vigna's xoshiro256** (2018); SplitMix64
 * expands the stream identity into the state, as its authors recommend. */
#include <string.h>

#include "sbi/rng.h"

typedef struct { uint64_t s[4]; } xoshiro_state;

static inline uint64_t
rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static inline uint64_t
splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static inline uint64_t
next(xoshiro_state *st)
{
	uint64_t *s = st->s;
	uint64_t result = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

static void
seed_state(xoshiro_state *st, uint64_t seed, uint64_t purpose, uint64_t index)
{
	/* Hash the three words in sequence so that nearby identities give
	 * unrelated states; four SplitMix64 outputs fill the state. */
	uint64_t x = seed;
	uint64_t h = splitmix64(&x);
	x = h ^ purpose;
	h = splitmix64(&x);
	x = h ^ index;
	for (int i = 0; i < 4; i++)
		st->s[i] = splitmix64(&x);
	if ((st->s[0] | st->s[1] | st->s[2] | st->s[3]) == 0)
		st->s[0] = 1;
}

static void
gsl_set(void *vstate, unsigned long seed)
{
	seed_state(vstate, seed, 0, 0);
}

static unsigned long
gsl_get(void *vstate)
{
	return (unsigned long)(next(vstate) >> 32);
}

static double
gsl_get_double(void *vstate)
{
	/* 53 random bits in [0, 1). */
	return (double)(next(vstate) >> 11) * 0x1.0p-53;
}

static const gsl_rng_type xoshiro_type = {
	"sbi-xoshiro256**", 0xffffffffUL, 0, sizeof(xoshiro_state),
	gsl_set, gsl_get, gsl_get_double,
};

const gsl_rng_type *sbi_rng_xoshiro256 = &xoshiro_type;

gsl_rng *
sbi_rng_alloc(void)
{
	return gsl_rng_alloc(sbi_rng_xoshiro256);
}

void
sbi_rng_set_stream(gsl_rng *r, uint64_t seed, uint64_t purpose, uint64_t index)
{
	seed_state(r->state, seed, purpose, index);
}

uint64_t
sbi_rng_next64(gsl_rng *r)
{
	return next(r->state);
}
