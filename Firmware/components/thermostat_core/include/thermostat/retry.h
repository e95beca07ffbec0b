/*
 * Retry policy for telemetry uploads.
 *
 * Backoff ("equal jitter"): the n-th consecutive failure (n = 0, 1, ...) waits
 * c/2 + r % (c/2 + 1) ms, with c = min(max_ms, base_ms * 2^n) and r drawn from
 * the injected random source, so delays grow but never synchronise fleets.
 *
 * Decisions by HTTP status (0 = no response at all) and, for 403, by the code
 * of the JSON error body {"error":{"code":...}}:
 *   2xx            done, both backoffs reset
 *   401            stop: the key was revoked, the device needs re-provisioning
 *   403 with code quota_exceeded or tenant_disabled
 *                  hold: the platform refuses the tenant's telemetry for now (over
 *                  its sample quota, or disabled by an admin). Keep the batch and
 *                  retry after the long "hold" backoff (same jitter, base
 *                  TH_RETRY_HOLD_BASE_MS, cap TH_RETRY_HOLD_MAX_MS), or after
 *                  Retry-After if the server asks for longer
 *   429            wait Retry-After seconds (delta-seconds, capped at
 *                  TH_RETRY_AFTER_MAX_S) or, without a usable header, back off
 *   0, 408, 5xx    back off and retry (also 1xx/3xx, which the device never expects)
 *   other 4xx      discard: the server will never accept this batch (this
 *                  includes a 403 with any other code, or without a readable one)
 *
 * The hold backoff has its own failure count, which only a 2xx resets: a
 * transient failure or a discarded batch in between does not shorten the next hold.
 */
#ifndef THERMOSTAT_RETRY_H
#define THERMOSTAT_RETRY_H

#include <stdbool.h>
#include <stdint.h>

#define TH_RETRY_AFTER_MAX_S 3600u

/*
 * Hold backoff after 403 quota_exceeded / tenant_disabled: the n-th hold waits
 * c/2 .. c with c = min(1 h, 5 min * 2^n), i.e. 2.5-5 min, 5-10, 10-20, 20-40,
 * then 30-60 min for as long as the refusal lasts. Neither condition clears within
 * seconds (an admin raises the quota or re-enables the tenant), so a fleet asks
 * at most about once every half hour per device while it lasts, and resumes within
 * an hour of the platform accepting again.
 */
#define TH_RETRY_HOLD_BASE_MS (5u * 60u * 1000u)
#define TH_RETRY_HOLD_MAX_MS (60u * 60u * 1000u)

/* Error codes of a 403 after which the device holds its samples instead of discarding them. */
#define TH_ERROR_QUOTA_EXCEEDED "quota_exceeded"
#define TH_ERROR_TENANT_DISABLED "tenant_disabled"

/* Source of uniformly distributed 32-bit values (e.g. esp_random, or a seeded PRNG in tests). */
typedef uint32_t (*th_random_fn)(void *ctx);

typedef struct {
    uint32_t base_ms;
    uint32_t max_ms;
    uint32_t attempt; /* consecutive failures so far */
    uint32_t hold_base_ms;
    uint32_t hold_max_ms;
    uint32_t hold_attempt; /* holds since the last 2xx */
    th_random_fn random;
    void *random_ctx;
} th_retry_t;

typedef enum {
    TH_RETRY_DONE,
    TH_RETRY_AGAIN,
    TH_RETRY_HOLD,
    TH_RETRY_DISCARD,
    TH_RETRY_STOP
} th_retry_kind_t;

typedef struct {
    th_retry_kind_t kind;
    uint32_t delay_ms; /* for TH_RETRY_AGAIN and TH_RETRY_HOLD: wait before the next attempt */
} th_retry_action_t;

/*
 * Sets up the policy with no failures recorded; the hold backoff starts at
 * TH_RETRY_HOLD_BASE_MS / TH_RETRY_HOLD_MAX_MS (see th_retry_set_hold).
 */
void th_retry_init(th_retry_t *retry, uint32_t base_ms, uint32_t max_ms, th_random_fn random,
                   void *random_ctx);

/* Replaces the hold backoff's base and cap (e.g. a shorter one for a simulator). */
void th_retry_set_hold(th_retry_t *retry, uint32_t base_ms, uint32_t max_ms);

/*
 * Forgets past transient failures (after a success, or when connectivity
 * returns). The hold count stays: only a 2xx shows the platform accepts again.
 */
void th_retry_reset(th_retry_t *retry);

/* Delay before the next attempt after one more failure; advances the failure count. */
uint32_t th_retry_backoff_ms(th_retry_t *retry);

/* Delay before the next attempt after one more hold; advances the hold count. */
uint32_t th_retry_hold_ms(th_retry_t *retry);

/* True for a 403 answer whose error code asks the device to hold its samples. */
bool th_retry_is_hold(int http_status, const char *error_code);

/*
 * Parses a Retry-After value in delta-seconds form ("120", surrounding blanks
 * allowed) into `*seconds`, capped at TH_RETRY_AFTER_MAX_S. Returns false for
 * anything else (including the HTTP-date form), letting the caller back off.
 */
bool th_retry_after_parse(const char *value, uint32_t *seconds);

/*
 * Decides what to do with an upload answered by `http_status`. `retry_after`
 * (the Retry-After header) and `error_code` (the "code" of the JSON error body,
 * see th_error_code_parse) may be NULL.
 */
th_retry_action_t th_retry_decide(th_retry_t *retry, int http_status, const char *retry_after,
                                  const char *error_code);

#endif
