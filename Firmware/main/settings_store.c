#include "settings_store.h"

#include <math.h>

#include "nvs.h"

#define NAMESPACE "thermostat"

static bool get_string(nvs_handle_t nvs, const char *key, char *out, size_t cap)
{
    size_t len = cap;
    return nvs_get_str(nvs, key, out, &len) == ESP_OK;
}

bool settings_store_load_credentials(th_credentials_t *creds)
{
    nvs_handle_t nvs;
    char url[TH_URL_MAX + 1], serial[TH_SERIAL_MAX + 1], key[TH_API_KEY_MAX + 1];
    if (nvs_open(NAMESPACE, NVS_READONLY, &nvs) != ESP_OK) {
        return false;
    }
    const bool found = get_string(nvs, "url", url, sizeof url) &&
                       get_string(nvs, "serial", serial, sizeof serial) &&
                       get_string(nvs, "api_key", key, sizeof key);
    nvs_close(nvs);
    return found && th_credentials_set(creds, url, serial, key) == TH_PROV_OK;
}

esp_err_t settings_store_save_credentials(const th_credentials_t *creds)
{
    nvs_handle_t nvs;
    esp_err_t err = nvs_open(NAMESPACE, NVS_READWRITE, &nvs);
    if (err != ESP_OK) {
        return err;
    }
    err = nvs_set_str(nvs, "url", creds->url);
    if (err == ESP_OK) {
        err = nvs_set_str(nvs, "serial", creds->serial);
    }
    if (err == ESP_OK) {
        err = nvs_set_str(nvs, "api_key", creds->api_key);
    }
    if (err == ESP_OK) {
        err = nvs_commit(nvs);
    }
    nvs_close(nvs);
    return err;
}

void settings_store_load_settings(th_control_config_t *cfg)
{
    nvs_handle_t nvs;
    uint8_t mode;
    int32_t setpoint_dc;
    if (nvs_open(NAMESPACE, NVS_READONLY, &nvs) != ESP_OK) {
        return;
    }
    if (nvs_get_u8(nvs, "mode", &mode) == ESP_OK && mode <= TH_MODE_AUTO) {
        cfg->mode = (th_mode_t)mode;
    }
    if (nvs_get_i32(nvs, "setpoint_dc", &setpoint_dc) == ESP_OK) {
        cfg->setpoint_c = th_setpoint_adjust(setpoint_dc / 10.0, 0.0);
    }
    nvs_close(nvs);
}

esp_err_t settings_store_save_settings(const th_control_config_t *cfg)
{
    nvs_handle_t nvs;
    esp_err_t err = nvs_open(NAMESPACE, NVS_READWRITE, &nvs);
    if (err != ESP_OK) {
        return err;
    }
    err = nvs_set_u8(nvs, "mode", (uint8_t)cfg->mode);
    if (err == ESP_OK) {
        err = nvs_set_i32(nvs, "setpoint_dc", (int32_t)lround(cfg->setpoint_c * 10.0));
    }
    if (err == ESP_OK) {
        err = nvs_commit(nvs);
    }
    nvs_close(nvs);
    return err;
}
