#include "rng.h"

static uint64_t next64(sim_rng_t *rng)
{
    uint64_t z = (rng->state += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

void sim_rng_seed(sim_rng_t *rng, uint64_t seed)
{
    rng->state = seed;
}

uint32_t sim_rng_next(void *rng)
{
    return (uint32_t)(next64(rng) >> 32);
}

double sim_rng_uniform(sim_rng_t *rng)
{
    return (double)(next64(rng) >> 11) / 9007199254740992.0;
}
