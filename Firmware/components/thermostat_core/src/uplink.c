#include "thermostat/uplink.h"

#include <stdio.h>
#include <string.h>

#include "thermostat/ingest_response.h"
#include "thermostat/telemetry_json.h"

typedef struct {
    size_t encoded; /* samples in the request body */
    size_t skipped; /* samples that cannot be encoded and are discarded with the batch */
    uint64_t end_seq;
    size_t body_len;
} batch_t;

static void lock(const th_uplink_t *uplink)
{
    if (uplink->cfg.lock != NULL) {
        uplink->cfg.lock(uplink->cfg.lock_ctx);
    }
}

static void unlock(const th_uplink_t *uplink)
{
    if (uplink->cfg.unlock != NULL) {
        uplink->cfg.unlock(uplink->cfg.lock_ctx);
    }
}

th_status_t th_uplink_init(th_uplink_t *uplink, const th_uplink_config_t *cfg)
{
    if (cfg->credentials == NULL || cfg->ring == NULL || cfg->post == NULL ||
        cfg->random == NULL || cfg->body_buf == NULL || cfg->body_cap < TH_UPLINK_BODY_MIN ||
        cfg->batch_max == 0) {
        return TH_ERR_INVALID;
    }
    size_t base_len = strlen(cfg->credentials->url);
    while (base_len > 0 && cfg->credentials->url[base_len - 1] == '/') {
        base_len--;
    }
    memset(uplink, 0, sizeof *uplink);
    uplink->cfg = *cfg;
    snprintf(uplink->url, sizeof uplink->url, "%.*s%s", (int)base_len, cfg->credentials->url,
             TH_INGEST_PATH);
    snprintf(uplink->authorization, sizeof uplink->authorization, "Device %s:%s",
             cfg->credentials->serial, cfg->credentials->api_key);
    th_retry_init(&uplink->retry, cfg->backoff_base_ms, cfg->backoff_max_ms, cfg->random,
                  cfg->random_ctx);
    if (cfg->hold_base_ms != 0) {
        th_retry_set_hold(&uplink->retry, cfg->hold_base_ms, cfg->hold_max_ms);
    }
    uplink->state = TH_UPLINK_ACTIVE;
    return TH_OK;
}

/* Encodes the oldest buffered samples into the body buffer; caller holds the lock. */
static batch_t build_batch(th_uplink_t *uplink)
{
    const th_ring_t *ring = uplink->cfg.ring;
    const size_t available = th_ring_count(ring);
    th_json_batch_t json;
    batch_t batch = {0, 0, th_ring_first_seq(ring), 0};
    size_t consumed = 0;

    th_json_batch_begin(&json, uplink->cfg.body_buf, uplink->cfg.body_cap);
    while (consumed < available && json.count < uplink->cfg.batch_max) {
        const th_status_t status =
            th_json_batch_add(&json, uplink->cfg.credentials->serial, th_ring_at(ring, consumed));
        if (status == TH_ERR_NO_SPACE && json.count > 0) {
            break;
        }
        if (status != TH_OK) {
            batch.skipped++;
        }
        consumed++;
    }
    batch.encoded = json.count;
    batch.end_seq += consumed;
    th_json_batch_finish(&json, &batch.body_len);
    return batch;
}

static void release(th_uplink_t *uplink, const batch_t *batch)
{
    lock(uplink);
    th_ring_release_before(uplink->cfg.ring, batch->end_seq);
    unlock(uplink);
}

static void record_counts(th_uplink_t *uplink, const th_http_response_t *response)
{
    uint32_t accepted, duplicates;
    const char *end = memchr(response->body, '\0', sizeof response->body);
    if (th_ingest_response_parse(response->body, (size_t)(end - response->body), &accepted,
                                 &duplicates) == TH_OK) {
        uplink->stats.accepted += accepted;
        uplink->stats.duplicates += duplicates;
    }
}

th_uplink_result_t th_uplink_poll(th_uplink_t *uplink, uint64_t now_ms)
{
    if (uplink->state != TH_UPLINK_ACTIVE) {
        return TH_UPLINK_STOPPED;
    }
    if (now_ms < uplink->next_attempt_ms) {
        return TH_UPLINK_WAITING;
    }
    lock(uplink);
    const bool empty = th_ring_count(uplink->cfg.ring) == 0;
    const batch_t batch = empty ? (batch_t){0, 0, 0, 0} : build_batch(uplink);
    unlock(uplink);
    if (empty) {
        return TH_UPLINK_IDLE;
    }
    if (batch.encoded == 0) {
        release(uplink, &batch);
        uplink->stats.rejected += batch.skipped;
        return TH_UPLINK_DISCARDED;
    }

    const th_http_request_t request = {uplink->url, uplink->authorization, uplink->cfg.body_buf,
                                       batch.body_len};
    th_http_response_t response;
    memset(&response, 0, sizeof response);
    uplink->cfg.post(uplink->cfg.post_ctx, &request, &response);
    response.retry_after[sizeof response.retry_after - 1] = '\0';
    response.body[sizeof response.body - 1] = '\0';
    uplink->stats.requests++;
    if (response.status != 0) {
        uplink->stats.sent += batch.encoded;
    }

    char error_code[TH_ERROR_CODE_MAX + 1];
    th_error_code_parse(response.body, strlen(response.body), error_code);
    const th_retry_action_t action =
        th_retry_decide(&uplink->retry, response.status, response.retry_after, error_code);
    uplink->holding = action.kind == TH_RETRY_HOLD;
    switch (action.kind) {
    case TH_RETRY_DONE:
        release(uplink, &batch);
        uplink->stats.acknowledged += batch.encoded;
        uplink->stats.rejected += batch.skipped;
        record_counts(uplink, &response);
        return TH_UPLINK_SENT;
    case TH_RETRY_DISCARD:
        release(uplink, &batch);
        uplink->stats.rejected += batch.encoded + batch.skipped;
        return TH_UPLINK_DISCARDED;
    case TH_RETRY_STOP:
        uplink->state = TH_UPLINK_NEEDS_REPROVISIONING;
        return TH_UPLINK_STOPPED;
    case TH_RETRY_AGAIN:
    case TH_RETRY_HOLD:
        break;
    }
    uplink->stats.failed_requests++;
    if (response.status == 429) {
        uplink->stats.rate_limited++;
    }
    if (uplink->holding) {
        uplink->stats.held++;
    }
    uplink->next_attempt_ms = now_ms + action.delay_ms;
    return uplink->holding ? TH_UPLINK_HELD : TH_UPLINK_RETRY;
}

void th_uplink_network_up(th_uplink_t *uplink, uint64_t now_ms)
{
    th_retry_reset(&uplink->retry);
    if (!uplink->holding) {
        uplink->next_attempt_ms = now_ms;
    }
}

uint64_t th_uplink_next_attempt_ms(const th_uplink_t *uplink)
{
    return uplink->next_attempt_ms;
}
