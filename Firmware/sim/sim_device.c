#include "sim_device.h"

#include <stdlib.h>

#include "thermostat/sample.h"

#define CONTROL_PERIOD_S 30
#define BACKOFF_BASE_MS 500u
#define BACKOFF_MAX_MS 30000u
#define SAMPLE_JSON_MAX 320u /* generous upper bound for one encoded sample */

/* Room parameters around typical values, varied per device by up to +-20 %. */
static void init_room(room_t *room, const sim_options_t *opts, sim_rng_t *rng)
{
    room->outside_c = opts->outside_c;
    room->inside_c = opts->setpoint_c - 1.5 + (sim_rng_uniform(rng) - 0.5) * 2.0;
    room->loss_per_hour = 0.25 * (0.8 + 0.4 * sim_rng_uniform(rng));
    room->heat_c_per_hour = 6.0 * (0.8 + 0.4 * sim_rng_uniform(rng));
    room->cool_c_per_hour = 4.0 * (0.8 + 0.4 * sim_rng_uniform(rng));
    room->heater_failed = opts->heater_failure;
}

bool sim_device_init(sim_device_t *dev, const th_credentials_t *creds, const sim_options_t *opts,
                     unsigned index, int64_t start_s, const bool *outage)
{
    const size_t body_cap = opts->batch * SAMPLE_JSON_MAX + TH_UPLINK_BODY_MIN;
    dev->credentials = *creds;
    dev->outside_sensor = !opts->no_outside_sensor;
    sim_rng_seed(&dev->rng, opts->seed * 1000003u + index);
    init_room(&dev->room, opts, &dev->rng);
    th_control_default_config(&dev->control_cfg);
    dev->control_cfg.mode = opts->mode;
    dev->control_cfg.setpoint_c = opts->setpoint_c;
    th_control_init(&dev->control, start_s - dev->control_cfg.min_off_s);
    dev->sim_time_s = start_s;
    dev->generated = 0;
    dev->first_timestamp = start_s;
    dev->last_timestamp = start_s;

    dev->ring_storage = calloc(opts->buffer, sizeof *dev->ring_storage);
    dev->body = malloc(body_cap);
    dev->transport.curl = NULL;
    if (dev->ring_storage == NULL || dev->body == NULL ||
        !curl_transport_init(&dev->transport, outage)) {
        return false;
    }
    th_ring_init(&dev->ring, dev->ring_storage, opts->buffer);

    const th_uplink_config_t cfg = {
        .credentials = &dev->credentials,
        .ring = &dev->ring,
        .post = curl_transport_post,
        .post_ctx = &dev->transport,
        .random = sim_rng_next,
        .random_ctx = &dev->rng,
        .body_buf = dev->body,
        .body_cap = body_cap,
        .batch_max = opts->batch,
        .backoff_base_ms = BACKOFF_BASE_MS,
        .backoff_max_ms = BACKOFF_MAX_MS,
        .hold_base_ms = TH_RETRY_HOLD_BASE_MS,
        .hold_max_ms = TH_RETRY_HOLD_MAX_MS,
    };
    return th_uplink_init(&dev->uplink, &cfg) == TH_OK;
}

static th_output_t control(sim_device_t *dev)
{
    const th_reading_t inside = {true, dev->room.inside_c};
    return th_control_step(&dev->control, &dev->control_cfg, inside, dev->sim_time_s);
}

void sim_device_record(sim_device_t *dev, int64_t timestamp)
{
    while (dev->sim_time_s < timestamp) {
        const int64_t left = timestamp - dev->sim_time_s;
        const int64_t step = left < CONTROL_PERIOD_S ? left : CONTROL_PERIOD_S;
        room_advance(&dev->room, control(dev), (double)step);
        dev->sim_time_s += step;
    }
    const th_reading_t inside = {true, dev->room.inside_c};
    const th_reading_t outside = {dev->outside_sensor, dev->room.outside_c};
    th_sample_t sample;
    if (!th_sample_from_readings(&sample, timestamp, &dev->control_cfg, control(dev), inside,
                                 outside)) {
        return;
    }
    th_ring_push(&dev->ring, &sample);
    if (dev->generated == 0) {
        dev->first_timestamp = timestamp;
    }
    dev->last_timestamp = timestamp;
    dev->generated++;
}

void sim_device_service(sim_device_t *dev, uint64_t now_ms)
{
    th_uplink_result_t result;
    do {
        result = th_uplink_poll(&dev->uplink, now_ms);
    } while (result == TH_UPLINK_SENT || result == TH_UPLINK_DISCARDED);
}

bool sim_device_finished(const sim_device_t *dev)
{
    return th_ring_count(&dev->ring) == 0 || sim_device_needs_reprovisioning(dev);
}

bool sim_device_needs_reprovisioning(const sim_device_t *dev)
{
    return dev->uplink.state == TH_UPLINK_NEEDS_REPROVISIONING;
}

bool sim_device_delivered_all(const sim_device_t *dev)
{
    return dev->uplink.stats.acknowledged == dev->generated;
}

void sim_device_free(sim_device_t *dev)
{
    if (dev->transport.curl != NULL) {
        curl_transport_cleanup(&dev->transport);
    }
    free(dev->ring_storage);
    free(dev->body);
    dev->ring_storage = NULL;
    dev->body = NULL;
}
