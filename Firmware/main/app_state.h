/* State shared by the firmware tasks; every field is guarded by `mutex` unless noted. */
#ifndef APP_STATE_H
#define APP_STATE_H

#include <stdbool.h>

#include "freertos/FreeRTOS.h"
#include "freertos/event_groups.h"
#include "freertos/semphr.h"

#include "thermostat/control.h"
#include "thermostat/provisioning.h"
#include "thermostat/ring_buffer.h"

/* Bits of `events` (the event group itself needs no lock). */
#define APP_EVENT_WIFI_UP BIT0     /* station has an IP address */
#define APP_EVENT_TIME_SYNCED BIT1 /* SNTP set the clock: samples can be timestamped */
#define APP_EVENT_PROVISIONED BIT2 /* `credentials` are valid and will not change */
#define APP_EVENT_REPROVISION BIT3 /* the platform revoked the key (401) */

typedef struct {
    SemaphoreHandle_t mutex;
    EventGroupHandle_t events;
    th_control_config_t control; /* user settings, changed by the buttons */
    th_reading_t inside;         /* latest readings, from the sensor task */
    th_reading_t outside;
    th_output_t output; /* what the control task drives, and why */
    th_fault_t fault;
    th_ring_t ring; /* telemetry waiting for upload */
    th_credentials_t credentials; /* written once before APP_EVENT_PROVISIONED, then read-only */
} app_state_t;

/* Creates the mutex, event group and ring buffer; control settings start from Kconfig. */
void app_state_init(app_state_t *app);

/* Takes the state mutex; `app` is an app_state_t (th_lock_fn-compatible for the uplink). */
void app_state_lock(void *app);

/* Releases the state mutex. */
void app_state_unlock(void *app);

#endif
