#include "thermostat/retry.h"

#include <stddef.h>
#include <string.h>

void th_retry_init(th_retry_t *retry, uint32_t base_ms, uint32_t max_ms, th_random_fn random,
                   void *random_ctx)
{
    retry->base_ms = base_ms;
    retry->max_ms = max_ms;
    retry->attempt = 0;
    retry->hold_base_ms = TH_RETRY_HOLD_BASE_MS;
    retry->hold_max_ms = TH_RETRY_HOLD_MAX_MS;
    retry->hold_attempt = 0;
    retry->random = random;
    retry->random_ctx = random_ctx;
}

void th_retry_set_hold(th_retry_t *retry, uint32_t base_ms, uint32_t max_ms)
{
    retry->hold_base_ms = base_ms;
    retry->hold_max_ms = max_ms;
}

void th_retry_reset(th_retry_t *retry)
{
    retry->attempt = 0;
}

/* Equal jitter over c = min(max_ms, base_ms * 2^attempt); advances `*attempt`. */
static uint32_t jittered(const th_retry_t *retry, uint32_t base_ms, uint32_t max_ms,
                         uint32_t *attempt)
{
    uint64_t ceiling = base_ms;
    for (uint32_t i = 0; i < *attempt && ceiling > 0 && ceiling < max_ms; i++) {
        ceiling *= 2;
    }
    if (ceiling > max_ms) {
        ceiling = max_ms;
    }
    if (*attempt < UINT32_MAX) {
        (*attempt)++;
    }
    const uint64_t half = ceiling / 2;
    return (uint32_t)(half + retry->random(retry->random_ctx) % (ceiling - half + 1));
}

uint32_t th_retry_backoff_ms(th_retry_t *retry)
{
    return jittered(retry, retry->base_ms, retry->max_ms, &retry->attempt);
}

uint32_t th_retry_hold_ms(th_retry_t *retry)
{
    return jittered(retry, retry->hold_base_ms, retry->hold_max_ms, &retry->hold_attempt);
}

bool th_retry_is_hold(int http_status, const char *error_code)
{
    return http_status == 403 && error_code != NULL &&
           (strcmp(error_code, TH_ERROR_QUOTA_EXCEEDED) == 0 ||
            strcmp(error_code, TH_ERROR_TENANT_DISABLED) == 0);
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

bool th_retry_after_parse(const char *value, uint32_t *seconds)
{
    if (value == NULL) {
        return false;
    }
    while (is_blank(*value)) {
        value++;
    }
    uint32_t total = 0;
    const char *digits = value;
    while (*value >= '0' && *value <= '9') {
        total = total * 10 + (uint32_t)(*value - '0');
        if (total > TH_RETRY_AFTER_MAX_S) {
            total = TH_RETRY_AFTER_MAX_S + 1;
        }
        value++;
    }
    if (value == digits) {
        return false;
    }
    while (is_blank(*value)) {
        value++;
    }
    if (*value != '\0') {
        return false;
    }
    *seconds = total > TH_RETRY_AFTER_MAX_S ? TH_RETRY_AFTER_MAX_S : total;
    return true;
}

th_retry_action_t th_retry_decide(th_retry_t *retry, int http_status, const char *retry_after,
                                  const char *error_code)
{
    th_retry_action_t action = {TH_RETRY_AGAIN, 0};
    uint32_t seconds;
    if (http_status >= 200 && http_status <= 299) {
        th_retry_reset(retry);
        retry->hold_attempt = 0;
        action.kind = TH_RETRY_DONE;
    } else if (http_status == 401) {
        action.kind = TH_RETRY_STOP;
    } else if (th_retry_is_hold(http_status, error_code)) {
        th_retry_reset(retry);
        action.kind = TH_RETRY_HOLD;
        action.delay_ms = th_retry_hold_ms(retry);
        if (th_retry_after_parse(retry_after, &seconds) && seconds * 1000u > action.delay_ms) {
            action.delay_ms = seconds * 1000u;
        }
    } else if (http_status == 429 && th_retry_after_parse(retry_after, &seconds)) {
        action.delay_ms = seconds * 1000u;
    } else if (http_status >= 400 && http_status <= 499 && http_status != 408 &&
               http_status != 429) {
        th_retry_reset(retry);
        action.kind = TH_RETRY_DISCARD;
    } else {
        action.delay_ms = th_retry_backoff_ms(retry);
    }
    return action;
}
