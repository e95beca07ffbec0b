/* Persistent settings and device credentials in NVS (namespace "thermostat"). */
#ifndef SETTINGS_STORE_H
#define SETTINGS_STORE_H

#include <stdbool.h>

#include "esp_err.h"

#include "thermostat/control.h"
#include "thermostat/provisioning.h"

/* Loads stored credentials; false when none are stored or they no longer validate. */
bool settings_store_load_credentials(th_credentials_t *creds);

/* Stores credentials from a provisioning payload. */
esp_err_t settings_store_save_credentials(const th_credentials_t *creds);

/* Overrides mode and setpoint in `cfg` with the stored values, if any. */
void settings_store_load_settings(th_control_config_t *cfg);

/* Stores mode and setpoint (the setpoint in tenths of a degree). */
esp_err_t settings_store_save_settings(const th_control_config_t *cfg);

#endif
