#include "app_state.h"

#include "sdkconfig.h"

static th_sample_t ring_storage[CONFIG_THERMOSTAT_BUFFER_SAMPLES];

void app_state_init(app_state_t *app)
{
    app->mutex = xSemaphoreCreateMutex();
    app->events = xEventGroupCreate();
    configASSERT(app->mutex != NULL && app->events != NULL);

    th_control_default_config(&app->control);
    app->control.hysteresis_c = CONFIG_THERMOSTAT_HYSTERESIS_DECI_C / 10.0;
    app->control.min_on_s = CONFIG_THERMOSTAT_MIN_ON_S;
    app->control.min_off_s = CONFIG_THERMOSTAT_MIN_OFF_S;
    app->inside = (th_reading_t){false, 0.0};
    app->outside = (th_reading_t){false, 0.0};
    app->output = TH_OUTPUT_OFF;
    app->fault = TH_FAULT_NONE;
    th_ring_init(&app->ring, ring_storage, CONFIG_THERMOSTAT_BUFFER_SAMPLES);
}

void app_state_lock(void *app)
{
    xSemaphoreTake(((app_state_t *)app)->mutex, portMAX_DELAY);
}

void app_state_unlock(void *app)
{
    xSemaphoreGive(((app_state_t *)app)->mutex);
}
