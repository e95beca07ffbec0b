/*
 * Fixed-capacity FIFO of samples kept while the network is down. When it is full,
 * a push drops the oldest sample and counts it. Every sample gets a sequence
 * number so an uploader can release exactly the samples it sent, even if newer
 * pushes evicted some of them meanwhile. Not thread-safe: callers lock.
 */
#ifndef THERMOSTAT_RING_BUFFER_H
#define THERMOSTAT_RING_BUFFER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "thermostat/sample.h"

typedef struct {
    th_sample_t *slots;
    size_t capacity;
    size_t head; /* slot of the oldest sample */
    size_t count;
    uint64_t first_seq; /* sequence number of the oldest sample */
    uint64_t dropped;
} th_ring_t;

/* Uses the caller's `storage` of `capacity` samples; the buffer starts empty. */
void th_ring_init(th_ring_t *ring, th_sample_t *storage, size_t capacity);

/* Appends a copy of `sample`; returns true when the oldest sample had to be dropped. */
bool th_ring_push(th_ring_t *ring, const th_sample_t *sample);

/* Number of samples held. */
size_t th_ring_count(const th_ring_t *ring);

/* The `index`-th oldest sample (0 = oldest), or NULL when out of range. */
const th_sample_t *th_ring_at(const th_ring_t *ring, size_t index);

/* Sequence number of the oldest sample (of the next push when empty). */
uint64_t th_ring_first_seq(const th_ring_t *ring);

/* Removes every sample whose sequence number is below `seq`. */
void th_ring_release_before(th_ring_t *ring, uint64_t seq);

/* Samples dropped because the buffer was full, since init. */
uint64_t th_ring_dropped(const th_ring_t *ring);

#endif
