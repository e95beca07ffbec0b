/*
 * Telemetry uplink: uploads buffered samples oldest first, in batches, through a
 * caller-supplied HTTP transport, following the retry policy (retry.h). Samples
 * leave the ring buffer only once the platform acknowledged them (2xx) or
 * refused them for good (other 4xx). After a 401 the uplink stops for good and
 * reports TH_UPLINK_NEEDS_REPROVISIONING. A 403 quota_exceeded or
 * tenant_disabled puts it on hold: the samples stay buffered (a full ring still
 * drops its oldest, as during an outage) and the same batch is tried again after
 * the long hold backoff, which connectivity returning does not cut short. Time is
 * a caller-supplied monotonic clock in milliseconds; nothing here blocks, sleeps
 * or allocates.
 */
#ifndef THERMOSTAT_UPLINK_H
#define THERMOSTAT_UPLINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "thermostat/provisioning.h"
#include "thermostat/retry.h"
#include "thermostat/ring_buffer.h"
#include "thermostat/status.h"

#define TH_INGEST_PATH "/api/telemetry/ingest/"
#define TH_HTTP_HEADER_MAX 32
#define TH_HTTP_BODY_MAX 256
#define TH_UPLINK_BODY_MIN 512

/* One POST {url}/api/telemetry/ingest/ with Content-Type: application/json. */
typedef struct {
    const char *url;
    const char *authorization; /* full header value: "Device <serial>:<api_key>" */
    const char *body;
    size_t body_len;
} th_http_request_t;

typedef struct {
    int status;                           /* HTTP status code, 0 when no response arrived */
    char retry_after[TH_HTTP_HEADER_MAX]; /* Retry-After header value, "" when absent */
    char body[TH_HTTP_BODY_MAX];          /* start of the response body, NUL-terminated */
} th_http_response_t;

/* Performs one request; `response` arrives zeroed and must be filled (status 0 on failure). */
typedef void (*th_http_post_fn)(void *ctx, const th_http_request_t *request,
                                th_http_response_t *response);

/* Optional lock around ring buffer access when other tasks push samples concurrently. */
typedef void (*th_lock_fn)(void *ctx);

typedef struct {
    const th_credentials_t *credentials;
    th_ring_t *ring;
    th_http_post_fn post;
    void *post_ctx;
    th_random_fn random; /* jitter source for the backoff */
    void *random_ctx;
    char *body_buf; /* request body buffer, at least TH_UPLINK_BODY_MIN bytes */
    size_t body_cap;
    size_t batch_max; /* samples per request, at least 1 */
    uint32_t backoff_base_ms;
    uint32_t backoff_max_ms;
    uint32_t hold_base_ms; /* hold backoff; 0 for TH_RETRY_HOLD_BASE_MS / TH_RETRY_HOLD_MAX_MS */
    uint32_t hold_max_ms;
    th_lock_fn lock; /* lock/unlock may be NULL */
    th_lock_fn unlock;
    void *lock_ctx;
} th_uplink_config_t;

typedef struct {
    uint64_t requests;        /* upload attempts */
    uint64_t failed_requests; /* attempts to be retried: no response, 408, 429, 5xx, holds... */
    uint64_t rate_limited;    /* 429 answers */
    uint64_t held;            /* 403 quota_exceeded / tenant_disabled answers */
    uint64_t sent;            /* samples carried by requests that got an HTTP answer */
    uint64_t acknowledged;    /* samples in batches answered 2xx */
    uint64_t accepted;        /* as counted by the platform */
    uint64_t duplicates;      /* as counted by the platform (already stored) */
    uint64_t rejected;        /* samples discarded: permanent 4xx, or not encodable */
} th_uplink_stats_t;

typedef enum { TH_UPLINK_ACTIVE, TH_UPLINK_NEEDS_REPROVISIONING } th_uplink_state_t;

typedef enum {
    TH_UPLINK_IDLE,      /* nothing buffered */
    TH_UPLINK_WAITING,   /* backing off until th_uplink_next_attempt_ms() */
    TH_UPLINK_SENT,      /* one batch acknowledged */
    TH_UPLINK_RETRY,     /* the attempt failed; the samples stay buffered */
    TH_UPLINK_HELD,      /* the platform refuses for now (quota, tenant disabled); samples stay */
    TH_UPLINK_DISCARDED, /* samples were dropped as permanently unacceptable */
    TH_UPLINK_STOPPED    /* the key was revoked: needs re-provisioning */
} th_uplink_result_t;

typedef struct {
    th_uplink_config_t cfg;
    char url[TH_URL_MAX + sizeof TH_INGEST_PATH];
    char authorization[sizeof "Device " + TH_SERIAL_MAX + 1 + TH_API_KEY_MAX];
    th_retry_t retry;
    th_uplink_state_t state;
    bool holding; /* the pending wait is a hold backoff */
    uint64_t next_attempt_ms;
    th_uplink_stats_t stats;
} th_uplink_t;

/* Prepares the uplink; TH_ERR_INVALID when a required field is missing or too small. */
th_status_t th_uplink_init(th_uplink_t *uplink, const th_uplink_config_t *cfg);

/* Sends at most one batch if one is buffered and no backoff is pending at `now_ms`. */
th_uplink_result_t th_uplink_poll(th_uplink_t *uplink, uint64_t now_ms);

/*
 * Connectivity came back: forget the transient backoff and allow an attempt at
 * `now_ms`, unless the uplink is on hold (the platform, not the network, asked it
 * to wait): then the pending wait stands.
 */
void th_uplink_network_up(th_uplink_t *uplink, uint64_t now_ms);

/* Earliest time the next attempt may happen. */
uint64_t th_uplink_next_attempt_ms(const th_uplink_t *uplink);

#endif
