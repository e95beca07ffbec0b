/* Small seeded pseudo-random generator (SplitMix64) so simulator runs are reproducible. */
#ifndef SIM_RNG_H
#define SIM_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t state;
} sim_rng_t;

/* Seeds the generator; equal seeds give equal sequences. */
void sim_rng_seed(sim_rng_t *rng, uint64_t seed);

/* Next 32 random bits; matches th_random_fn so it can drive the retry jitter. */
uint32_t sim_rng_next(void *rng);

/* Uniform double in [0, 1). */
double sim_rng_uniform(sim_rng_t *rng);

#endif
