/*
 * Buttons and display. Three buttons to ground (internal pull-ups) are polled and
 * debounced: up/down move the setpoint by 0.5 C, mode cycles OFF-HEAT-COOL-AUTO;
 * changes are saved to NVS. The display is a status line on the console, printed
 * when it changes; a panel driver would render the same status.
 */
#include <stdio.h>
#include <string.h>

#include "freertos/FreeRTOS.h"
#include "freertos/task.h"

#include "driver/gpio.h"
#include "esp_log.h"
#include "sdkconfig.h"

#include "app_state.h"
#include "settings_store.h"
#include "tasks.h"

#define POLL_MS 20
#define STABLE_POLLS 3 /* a level must hold for 60 ms to count */
#define DISPLAY_EVERY_POLLS 50
#define SETPOINT_STEP_C 0.5

static const char *TAG = "ui";

typedef struct {
    gpio_num_t pin;
    int stable_level;
    int candidate_level;
    int count;
} button_t;

/* Returns true once per press (the debounced level went from released to pressed). */
static bool pressed(button_t *button)
{
    const int level = gpio_get_level(button->pin);
    if (level != button->candidate_level) {
        button->candidate_level = level;
        button->count = 0;
        return false;
    }
    if (button->count < STABLE_POLLS) {
        button->count++;
        if (button->count == STABLE_POLLS && level != button->stable_level) {
            button->stable_level = level;
            return level == 0;
        }
    }
    return false;
}

static void apply_buttons(app_state_t *app, button_t buttons[3])
{
    const bool up = pressed(&buttons[0]);
    const bool down = pressed(&buttons[1]);
    const bool mode = pressed(&buttons[2]);
    if (!up && !down && !mode) {
        return;
    }
    app_state_lock(app);
    th_control_config_t *cfg = &app->control;
    const double delta = (up ? SETPOINT_STEP_C : 0.0) - (down ? SETPOINT_STEP_C : 0.0);
    cfg->setpoint_c = th_setpoint_adjust(cfg->setpoint_c, delta);
    if (mode) {
        cfg->mode = th_mode_next(cfg->mode);
    }
    const th_control_config_t saved = *cfg;
    app_state_unlock(app);
    if (settings_store_save_settings(&saved) != ESP_OK) {
        ESP_LOGW(TAG, "settings not saved");
    }
}

static void format_reading(char *out, size_t cap, th_reading_t reading)
{
    if (reading.valid) {
        snprintf(out, cap, "%.1fC", reading.celsius);
    } else {
        snprintf(out, cap, "--.-C");
    }
}

static void render(app_state_t *app, char *line, size_t cap)
{
    char inside[16], outside[16];
    app_state_lock(app);
    const th_reading_t inside_reading = app->inside;
    const th_reading_t outside_reading = app->outside;
    const th_control_config_t cfg = app->control;
    const th_output_t output = app->output;
    const th_fault_t fault = app->fault;
    const unsigned buffered = (unsigned)th_ring_count(&app->ring);
    app_state_unlock(app);

    const EventBits_t events = xEventGroupGetBits(app->events);
    const char *status = "";
    if (events & APP_EVENT_REPROVISION) {
        status = " [re-provision: paste a new payload]";
    } else if (fault != TH_FAULT_NONE) {
        status = " [fault: outputs off]";
    } else if (!(events & APP_EVENT_WIFI_UP)) {
        status = " [offline]";
    }
    format_reading(inside, sizeof inside, inside_reading);
    format_reading(outside, sizeof outside, outside_reading);
    snprintf(line, cap, "in %s out %s set %.1fC %s %s buffered %u%s", inside, outside,
             cfg.setpoint_c, th_mode_name(cfg.mode), th_output_name(output), buffered, status);
}

void ui_task(void *arg)
{
    app_state_t *app = arg;
    button_t buttons[3] = {
        {(gpio_num_t)CONFIG_THERMOSTAT_GPIO_BUTTON_UP, 1, 1, STABLE_POLLS},
        {(gpio_num_t)CONFIG_THERMOSTAT_GPIO_BUTTON_DOWN, 1, 1, STABLE_POLLS},
        {(gpio_num_t)CONFIG_THERMOSTAT_GPIO_BUTTON_MODE, 1, 1, STABLE_POLLS},
    };
    const gpio_config_t inputs = {
        .pin_bit_mask = (1ULL << buttons[0].pin) | (1ULL << buttons[1].pin) |
                        (1ULL << buttons[2].pin),
        .mode = GPIO_MODE_INPUT,
        .pull_up_en = GPIO_PULLUP_ENABLE,
        .pull_down_en = GPIO_PULLDOWN_DISABLE,
        .intr_type = GPIO_INTR_DISABLE,
    };
    char shown[128] = "", line[128];
    ESP_ERROR_CHECK(gpio_config(&inputs));

    for (unsigned tick = 0;; tick++) {
        apply_buttons(app, buttons);
        if (tick % DISPLAY_EVERY_POLLS == 0) {
            render(app, line, sizeof line);
            if (strcmp(line, shown) != 0) {
                printf("%s\n", line);
                strcpy(shown, line);
            }
        }
        vTaskDelay(pdMS_TO_TICKS(POLL_MS));
    }
}
