/* Runs the portable control law once a second and drives the heating and cooling relays. */
#include "freertos/FreeRTOS.h"
#include "freertos/task.h"

#include "driver/gpio.h"
#include "esp_timer.h"
#include "sdkconfig.h"

#include "app_state.h"
#include "tasks.h"

#define PERIOD_MS 1000

static const gpio_num_t heat_relay = (gpio_num_t)CONFIG_THERMOSTAT_GPIO_HEAT_RELAY;
static const gpio_num_t cool_relay = (gpio_num_t)CONFIG_THERMOSTAT_GPIO_COOL_RELAY;

static int64_t monotonic_s(void)
{
    return esp_timer_get_time() / 1000000;
}

/* Releases relays before energising one, so heating and cooling are never on together. */
static void drive(th_output_t output)
{
    if (output != TH_OUTPUT_HEAT_ON) {
        gpio_set_level(heat_relay, 0);
    }
    if (output != TH_OUTPUT_COOL_ON) {
        gpio_set_level(cool_relay, 0);
    }
    if (output == TH_OUTPUT_HEAT_ON) {
        gpio_set_level(heat_relay, 1);
    }
    if (output == TH_OUTPUT_COOL_ON) {
        gpio_set_level(cool_relay, 1);
    }
}

void control_task(void *arg)
{
    app_state_t *app = arg;
    const gpio_config_t relays = {
        .pin_bit_mask = (1ULL << heat_relay) | (1ULL << cool_relay),
        .mode = GPIO_MODE_OUTPUT,
        .pull_up_en = GPIO_PULLUP_DISABLE,
        .pull_down_en = GPIO_PULLDOWN_DISABLE,
        .intr_type = GPIO_INTR_DISABLE,
    };
    th_control_t control;

    ESP_ERROR_CHECK(gpio_config(&relays));
    drive(TH_OUTPUT_OFF);
    th_control_init(&control, monotonic_s());

    TickType_t wake = xTaskGetTickCount();
    for (;;) {
        app_state_lock(app);
        const th_control_config_t cfg = app->control;
        const th_reading_t inside = app->inside;
        app_state_unlock(app);

        const th_output_t output = th_control_step(&control, &cfg, inside, monotonic_s());
        drive(output);

        app_state_lock(app);
        app->output = output;
        app->fault = control.fault;
        app_state_unlock(app);
        vTaskDelayUntil(&wake, pdMS_TO_TICKS(PERIOD_MS));
    }
}
