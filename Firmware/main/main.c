/* ThermostatRTOS firmware entry point: shared state, settings from NVS, one task per concern. */
#include <stdlib.h>

#include "freertos/FreeRTOS.h"
#include "freertos/task.h"

#include "esp_err.h"
#include "esp_log.h"
#include "nvs_flash.h"

#include "app_state.h"
#include "settings_store.h"
#include "tasks.h"

static const char *TAG = "main";
static app_state_t app;

static void start_task(TaskFunction_t entry, const char *name, uint32_t stack, UBaseType_t prio)
{
    if (xTaskCreate(entry, name, stack, &app, prio, NULL) != pdPASS) {
        ESP_LOGE(TAG, "cannot start task %s", name);
        abort();
    }
}

void app_main(void)
{
    esp_err_t err = nvs_flash_init();
    if (err == ESP_ERR_NVS_NO_FREE_PAGES || err == ESP_ERR_NVS_NEW_VERSION_FOUND) {
        ESP_ERROR_CHECK(nvs_flash_erase());
        err = nvs_flash_init();
    }
    ESP_ERROR_CHECK(err);

    app_state_init(&app);
    settings_store_load_settings(&app.control);

    start_task(control_task, "control", 3072, 6);
    start_task(sensor_task, "sensors", 3072, 5);
    start_task(ui_task, "ui", 3072, 4);
    start_task(network_task, "network", 4096, 3);
    start_task(telemetry_task, "telemetry", 6144, 3);
}
