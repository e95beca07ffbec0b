#include "thermostat/ring_buffer.h"

void th_ring_init(th_ring_t *ring, th_sample_t *storage, size_t capacity)
{
    ring->slots = storage;
    ring->capacity = capacity;
    ring->head = 0;
    ring->count = 0;
    ring->first_seq = 0;
    ring->dropped = 0;
}

static void remove_oldest(th_ring_t *ring, size_t n)
{
    ring->head = (ring->head + n) % ring->capacity;
    ring->count -= n;
    ring->first_seq += n;
}

bool th_ring_push(th_ring_t *ring, const th_sample_t *sample)
{
    if (ring->capacity == 0) {
        ring->first_seq++;
        ring->dropped++;
        return true;
    }
    const bool full = ring->count == ring->capacity;
    if (full) {
        remove_oldest(ring, 1);
        ring->dropped++;
    }
    ring->slots[(ring->head + ring->count) % ring->capacity] = *sample;
    ring->count++;
    return full;
}

size_t th_ring_count(const th_ring_t *ring)
{
    return ring->count;
}

const th_sample_t *th_ring_at(const th_ring_t *ring, size_t index)
{
    if (index >= ring->count) {
        return NULL;
    }
    return &ring->slots[(ring->head + index) % ring->capacity];
}

uint64_t th_ring_first_seq(const th_ring_t *ring)
{
    return ring->first_seq;
}

void th_ring_release_before(th_ring_t *ring, uint64_t seq)
{
    if (seq <= ring->first_seq || ring->count == 0) {
        return;
    }
    const uint64_t n = seq - ring->first_seq;
    remove_oldest(ring, n < ring->count ? (size_t)n : ring->count);
}

uint64_t th_ring_dropped(const th_ring_t *ring)
{
    return ring->dropped;
}
