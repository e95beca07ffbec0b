/*
 * Telemetry: a sample every CONFIG_THERMOSTAT_SAMPLE_INTERVAL_S once SNTP set the
 * clock, buffered in the shared ring, uploaded oldest first while Wi-Fi is up.
 * Without a plausible outdoor reading the sample goes out with a null outside
 * temperature; without a plausible inside reading there is no sample.
 * A 401 raises APP_EVENT_REPROVISION; the network task then asks for a new payload.
 * A 403 quota_exceeded / tenant_disabled keeps the samples and waits the long
 * hold backoff (TH_RETRY_HOLD_BASE_MS .. TH_RETRY_HOLD_MAX_MS, retry.h).
 */
#include <math.h>
#include <time.h>

#include "freertos/FreeRTOS.h"
#include "freertos/task.h"

#include "esp_log.h"
#include "esp_random.h"
#include "esp_timer.h"
#include "sdkconfig.h"

#include "app_state.h"
#include "http_transport.h"
#include "tasks.h"
#include "thermostat/sample.h"
#include "thermostat/uplink.h"

#define POLL_MS 1000
#define BACKOFF_BASE_MS 2000u
#define BACKOFF_MAX_MS 300000u
#define SAMPLE_JSON_MAX 320u
#define EARLIEST_VALID_TIME 1704067200 /* 2024-01-01T00:00:00Z: an earlier clock is not set */

static const char *TAG = "telemetry";
static char body[CONFIG_THERMOSTAT_UPLOAD_BATCH * SAMPLE_JSON_MAX + TH_UPLINK_BODY_MIN];

static uint32_t hardware_random(void *ctx)
{
    (void)ctx;
    return esp_random();
}

static uint64_t monotonic_ms(void)
{
    return (uint64_t)(esp_timer_get_time() / 1000);
}

/* `*had_outside` remembers whether the previous sample had an outdoor reading (to log changes). */
static void record_sample(app_state_t *app, bool *had_outside)
{
    const time_t now = time(NULL);
    if (now < EARLIEST_VALID_TIME) {
        return;
    }
    th_sample_t sample;
    app_state_lock(app);
    const bool recorded = th_sample_from_readings(&sample, (int64_t)now, &app->control,
                                                  app->output, app->inside, app->outside);
    if (recorded) {
        th_ring_push(&app->ring, &sample);
    }
    app_state_unlock(app);
    if (!recorded) {
        ESP_LOGW(TAG, "sample skipped: the inside temperature sensor is faulty");
        return;
    }
    const bool has_outside = !isnan(sample.temp_outside_c);
    if (has_outside && !*had_outside) {
        ESP_LOGI(TAG, "outdoor sensor reading again");
    } else if (!has_outside && *had_outside) {
        ESP_LOGW(TAG, "no plausible outdoor reading: samples carry temp_outside_c null");
    }
    *had_outside = has_outside;
}

static void upload(app_state_t *app, th_uplink_t *uplink)
{
    th_uplink_result_t result;
    uint64_t now;
    do {
        now = monotonic_ms();
        result = th_uplink_poll(uplink, now);
    } while (result == TH_UPLINK_SENT || result == TH_UPLINK_DISCARDED);
    if (result == TH_UPLINK_STOPPED) {
        xEventGroupSetBits(app->events, APP_EVENT_REPROVISION);
    } else if (result == TH_UPLINK_HELD) {
        ESP_LOGW(TAG, "platform refuses telemetry for now (quota or tenant disabled): "
                      "samples kept, next try in %llu s",
                 (unsigned long long)((th_uplink_next_attempt_ms(uplink) - now) / 1000));
    }
}

void telemetry_task(void *arg)
{
    app_state_t *app = arg;
    http_transport_t transport = {NULL, NULL};
    th_uplink_t uplink;

    xEventGroupWaitBits(app->events, APP_EVENT_PROVISIONED, pdFALSE, pdTRUE, portMAX_DELAY);
    const th_uplink_config_t cfg = {
        .credentials = &app->credentials,
        .ring = &app->ring,
        .post = http_transport_post,
        .post_ctx = &transport,
        .random = hardware_random,
        .random_ctx = NULL,
        .body_buf = body,
        .body_cap = sizeof body,
        .batch_max = CONFIG_THERMOSTAT_UPLOAD_BATCH,
        .backoff_base_ms = BACKOFF_BASE_MS,
        .backoff_max_ms = BACKOFF_MAX_MS,
        .hold_base_ms = TH_RETRY_HOLD_BASE_MS,
        .hold_max_ms = TH_RETRY_HOLD_MAX_MS,
        .lock = app_state_lock,
        .unlock = app_state_unlock,
        .lock_ctx = app,
    };
    if (th_uplink_init(&uplink, &cfg) != TH_OK) {
        ESP_LOGE(TAG, "uplink configuration rejected; telemetry disabled");
        vTaskDelete(NULL);
    }

    uint64_t next_sample_ms = 0;
    bool was_up = false;
    bool had_outside = true;
    for (;;) {
        const EventBits_t events = xEventGroupGetBits(app->events);
        const uint64_t now = monotonic_ms();
        if ((events & APP_EVENT_TIME_SYNCED) && now >= next_sample_ms) {
            record_sample(app, &had_outside);
            next_sample_ms = now + CONFIG_THERMOSTAT_SAMPLE_INTERVAL_S * 1000u;
        }
        const bool up = (events & APP_EVENT_WIFI_UP) != 0;
        if (up && !was_up) {
            th_uplink_network_up(&uplink, now);
        }
        was_up = up;
        if (up) {
            upload(app, &uplink);
        }
        vTaskDelay(pdMS_TO_TICKS(POLL_MS));
    }
}
