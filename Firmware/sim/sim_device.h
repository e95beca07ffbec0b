/* One simulated thermostat: a room, the real control law, the offline buffer and the uplink. */
#ifndef SIM_DEVICE_H
#define SIM_DEVICE_H

#include <stdbool.h>
#include <stdint.h>

#include "curl_transport.h"
#include "options.h"
#include "rng.h"
#include "room_model.h"
#include "thermostat/control.h"
#include "thermostat/provisioning.h"
#include "thermostat/ring_buffer.h"
#include "thermostat/uplink.h"

typedef struct {
    th_credentials_t credentials;
    room_t room;
    th_control_config_t control_cfg;
    th_control_t control;
    bool outside_sensor; /* false: no outdoor sensor, samples carry a null outside temperature */
    int64_t sim_time_s; /* simulated Unix time the room has been advanced to */
    th_sample_t *ring_storage;
    th_ring_t ring;
    char *body;
    sim_rng_t rng;
    curl_transport_t transport;
    th_uplink_t uplink;
    uint64_t generated;
    int64_t first_timestamp;
    int64_t last_timestamp;
} sim_device_t;

/*
 * Sets up device number `index` at simulated time `start_s`, with room
 * parameters varied by the seed. `outage` is shared by all devices. False when
 * memory or libcurl is not available.
 */
bool sim_device_init(sim_device_t *dev, const th_credentials_t *creds, const sim_options_t *opts,
                     unsigned index, int64_t start_s, const bool *outage);

/*
 * Runs room and controller up to `timestamp` and buffers the sample taken then
 * (built by the firmware's th_sample_from_readings).
 */
void sim_device_record(sim_device_t *dev, int64_t timestamp);

/* Uploads buffered batches while they are accepted and no backoff is pending at `now_ms`. */
void sim_device_service(sim_device_t *dev, uint64_t now_ms);

/* True when nothing is left to do: buffer empty, or the key was revoked. */
bool sim_device_finished(const sim_device_t *dev);

/* True when the platform answered 401 and the device needs re-provisioning. */
bool sim_device_needs_reprovisioning(const sim_device_t *dev);

/* True when every generated sample was acknowledged by the platform. */
bool sim_device_delivered_all(const sim_device_t *dev);

/* Frees the device's buffers and curl handle. */
void sim_device_free(sim_device_t *dev);

#endif
