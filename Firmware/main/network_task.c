/*
 * Network: credentials (from NVS, or pasted on the serial console as a
 * provisioning payload), then the Wi-Fi station with automatic reconnection and
 * SNTP. After the platform revoked the key the task asks for a new payload,
 * stores it and restarts the device.
 */
#include <stdio.h>
#include <string.h>

#include "freertos/FreeRTOS.h"
#include "freertos/task.h"

#include "driver/uart.h"
#include "esp_event.h"
#include "esp_log.h"
#include "esp_netif.h"
#include "esp_netif_sntp.h"
#include "esp_system.h"
#include "esp_wifi.h"
#include "sdkconfig.h"

#include "app_state.h"
#include "settings_store.h"
#include "tasks.h"

#define CONSOLE_UART UART_NUM_0
#define CONSOLE_RX_BUFFER 2048

static const char *TAG = "network";
static EventGroupHandle_t sntp_events; /* the SNTP callback carries no context */

static void on_network_event(void *arg, esp_event_base_t base, int32_t id, void *data)
{
    app_state_t *app = arg;
    (void)data;
    if (base == WIFI_EVENT && id == WIFI_EVENT_STA_START) {
        esp_wifi_connect();
    } else if (base == WIFI_EVENT && id == WIFI_EVENT_STA_DISCONNECTED) {
        xEventGroupClearBits(app->events, APP_EVENT_WIFI_UP);
        esp_wifi_connect();
    } else if (base == IP_EVENT && id == IP_EVENT_STA_GOT_IP) {
        xEventGroupSetBits(app->events, APP_EVENT_WIFI_UP);
    }
}

static void on_time_sync(struct timeval *tv)
{
    (void)tv;
    xEventGroupSetBits(sntp_events, APP_EVENT_TIME_SYNCED);
}

static void start_wifi(app_state_t *app)
{
    const wifi_init_config_t init = WIFI_INIT_CONFIG_DEFAULT();
    wifi_config_t station;
    memset(&station, 0, sizeof station);
    strlcpy((char *)station.sta.ssid, CONFIG_THERMOSTAT_WIFI_SSID, sizeof station.sta.ssid);
    strlcpy((char *)station.sta.password, CONFIG_THERMOSTAT_WIFI_PASSWORD,
            sizeof station.sta.password);

    ESP_ERROR_CHECK(esp_netif_init());
    ESP_ERROR_CHECK(esp_event_loop_create_default());
    esp_netif_create_default_wifi_sta();
    ESP_ERROR_CHECK(esp_wifi_init(&init));
    ESP_ERROR_CHECK(esp_event_handler_instance_register(WIFI_EVENT, ESP_EVENT_ANY_ID,
                                                        on_network_event, app, NULL));
    ESP_ERROR_CHECK(esp_event_handler_instance_register(IP_EVENT, IP_EVENT_STA_GOT_IP,
                                                        on_network_event, app, NULL));
    ESP_ERROR_CHECK(esp_wifi_set_mode(WIFI_MODE_STA));
    ESP_ERROR_CHECK(esp_wifi_set_config(WIFI_IF_STA, &station));
    ESP_ERROR_CHECK(esp_wifi_start());
}

static void start_sntp(app_state_t *app)
{
    esp_sntp_config_t config = ESP_NETIF_SNTP_DEFAULT_CONFIG(CONFIG_THERMOSTAT_NTP_SERVER);
    config.sync_cb = on_time_sync;
    sntp_events = app->events;
    ESP_ERROR_CHECK(esp_netif_sntp_init(&config));
}

/* Reads one console line; false when it was longer than `cap` - 1 (the rest is discarded). */
static bool read_line(char *line, size_t cap)
{
    size_t len = 0;
    bool overflow = false;
    for (;;) {
        uint8_t c;
        if (uart_read_bytes(CONSOLE_UART, &c, 1, portMAX_DELAY) != 1) {
            continue;
        }
        if (c == '\r' || c == '\n') {
            if (len > 0 || overflow) {
                line[len] = '\0';
                return !overflow;
            }
        } else if (len + 1 < cap) {
            line[len++] = (char)c;
        } else {
            overflow = true;
        }
    }
}

/* Blocks until a valid payload was pasted and stored. */
static void provision_from_console(th_credentials_t *creds)
{
    char line[TH_PROVISIONING_MAX + 1];
    if (!uart_is_driver_installed(CONSOLE_UART)) {
        ESP_ERROR_CHECK(uart_driver_install(CONSOLE_UART, CONSOLE_RX_BUFFER, 0, 0, NULL, 0));
    }
    for (;;) {
        printf("Paste the provisioning payload (thermostat://provision?v=1&...) and press Enter\n");
        if (!read_line(line, sizeof line)) {
            ESP_LOGW(TAG, "payload rejected: too long");
            continue;
        }
        const th_prov_status_t status = th_provision_parse(line, strlen(line), creds);
        if (status != TH_PROV_OK) {
            ESP_LOGW(TAG, "payload rejected: %s", th_prov_status_message(status));
        } else if (settings_store_save_credentials(creds) != ESP_OK) {
            ESP_LOGE(TAG, "credentials could not be stored");
        } else {
            ESP_LOGI(TAG, "provisioned as %s for %s", creds->serial, creds->url);
            return;
        }
    }
}

void network_task(void *arg)
{
    app_state_t *app = arg;
    th_credentials_t creds;
    if (!settings_store_load_credentials(&creds)) {
        ESP_LOGW(TAG, "not provisioned yet");
        provision_from_console(&creds);
    }
    app->credentials = creds;
    xEventGroupSetBits(app->events, APP_EVENT_PROVISIONED);
    start_wifi(app);
    start_sntp(app);

    xEventGroupWaitBits(app->events, APP_EVENT_REPROVISION, pdFALSE, pdTRUE, portMAX_DELAY);
    ESP_LOGE(TAG, "the platform revoked this device's key: re-provisioning needed");
    provision_from_console(&creds);
    esp_restart();
}
