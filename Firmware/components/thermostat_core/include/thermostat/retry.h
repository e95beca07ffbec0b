/*
 * Retry policy for telemetry uploads.
 *
 * Backoff ("equal jitter"): the n-th consecutive failure (n = 0, 1, ...) waits
 * c/2 + r % (c/2 + 1) ms, with c = min(max_ms, base_ms * 2^n) and r drawn from
 * the injected random source, so delays grow but never synchronise fleets.
 *
 * Decisions by HTTP status (0 = no response at all):
 *   2xx            done, backoff resets
 *   401            stop: the key was revoked, the device needs re-provisioning
 *   429            wait Retry-After seconds (delta-seconds, capped at
 *                  TH_RETRY_AFTER_MAX_S) or, without a usable header, back off
 *   0, 408, 5xx    back off and retry (also 1xx/3xx, which the device never expects)
 *   other 4xx      discard: the server will never accept this batch
 */
#ifndef THERMOSTAT_RETRY_H
#define THERMOSTAT_RETRY_H

#include <stdbool.h>
#include <stdint.h>

#define TH_RETRY_AFTER_MAX_S 3600u

/* Source of uniformly distributed 32-bit values (e.g. esp_random, or a seeded PRNG in tests). */
typedef uint32_t (*th_random_fn)(void *ctx);

typedef struct {
    uint32_t base_ms;
    uint32_t max_ms;
    uint32_t attempt; /* consecutive failures so far */
    th_random_fn random;
    void *random_ctx;
} th_retry_t;

typedef enum { TH_RETRY_DONE, TH_RETRY_AGAIN, TH_RETRY_DISCARD, TH_RETRY_STOP } th_retry_kind_t;

typedef struct {
    th_retry_kind_t kind;
    uint32_t delay_ms; /* for TH_RETRY_AGAIN: how long to wait before the next attempt */
} th_retry_action_t;

/* Sets up the policy with no failures recorded. */
void th_retry_init(th_retry_t *retry, uint32_t base_ms, uint32_t max_ms, th_random_fn random,
                   void *random_ctx);

/* Forgets past failures (after a success, or when connectivity returns). */
void th_retry_reset(th_retry_t *retry);

/* Delay before the next attempt after one more failure; advances the failure count. */
uint32_t th_retry_backoff_ms(th_retry_t *retry);

/*
 * Parses a Retry-After value in delta-seconds form ("120", surrounding blanks
 * allowed) into `*seconds`, capped at TH_RETRY_AFTER_MAX_S. Returns false for
 * anything else (including the HTTP-date form), letting the caller back off.
 */
bool th_retry_after_parse(const char *value, uint32_t *seconds);

/* Decides what to do with an upload answered by `http_status`; `retry_after` may be NULL. */
th_retry_action_t th_retry_decide(th_retry_t *retry, int http_status, const char *retry_after);

#endif
