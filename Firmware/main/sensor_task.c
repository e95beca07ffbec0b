/* Inside and outside temperature from two NTC dividers on ADC1 (oneshot driver, calibrated). */
#include "freertos/FreeRTOS.h"
#include "freertos/task.h"

#include "esp_adc/adc_cali.h"
#include "esp_adc/adc_cali_scheme.h"
#include "esp_adc/adc_oneshot.h"
#include "esp_log.h"
#include "sdkconfig.h"

#include "app_state.h"
#include "tasks.h"
#include "thermostat/ntc.h"

#define PERIOD_MS 1000
#define OVERSAMPLING 16

static const char *TAG = "sensors";

/* 10 kOhm B3950 NTC under a 10 kOhm series resistor from the 3.3 V rail. */
static const th_ntc_t ntc = {3300.0, 10000.0, 10000.0, 25.0, 3950.0};

static bool create_calibration(adc_cali_handle_t *cali)
{
#if ADC_CALI_SCHEME_CURVE_FITTING_SUPPORTED
    const adc_cali_curve_fitting_config_t cfg = {
        .unit_id = ADC_UNIT_1, .atten = ADC_ATTEN_DB_12, .bitwidth = ADC_BITWIDTH_DEFAULT};
    return adc_cali_create_scheme_curve_fitting(&cfg, cali) == ESP_OK;
#elif ADC_CALI_SCHEME_LINE_FITTING_SUPPORTED
    const adc_cali_line_fitting_config_t cfg = {
        .unit_id = ADC_UNIT_1,
        .atten = ADC_ATTEN_DB_12,
        .bitwidth = ADC_BITWIDTH_DEFAULT,
#if CONFIG_IDF_TARGET_ESP32
        .default_vref = 1100, /* used only when the eFuse holds no calibration */
#endif
    };
    return adc_cali_create_scheme_line_fitting(&cfg, cali) == ESP_OK;
#else
    (void)cali;
    return false;
#endif
}

/* Averages several conversions; an ADC or calibration error gives an invalid reading. */
static th_reading_t read_ntc(adc_oneshot_unit_handle_t adc, adc_cali_handle_t cali,
                             adc_channel_t channel)
{
    int sum_mv = 0;
    for (int i = 0; i < OVERSAMPLING; i++) {
        int raw, mv;
        if (adc_oneshot_read(adc, channel, &raw) != ESP_OK ||
            adc_cali_raw_to_voltage(cali, raw, &mv) != ESP_OK) {
            return (th_reading_t){false, 0.0};
        }
        sum_mv += mv;
    }
    return th_ntc_reading(&ntc, (double)sum_mv / OVERSAMPLING);
}

void sensor_task(void *arg)
{
    app_state_t *app = arg;
    const adc_channel_t inside_channel = (adc_channel_t)CONFIG_THERMOSTAT_ADC_CHANNEL_INSIDE;
    const adc_channel_t outside_channel = (adc_channel_t)CONFIG_THERMOSTAT_ADC_CHANNEL_OUTSIDE;
    const adc_oneshot_unit_init_cfg_t unit_cfg = {.unit_id = ADC_UNIT_1};
    const adc_oneshot_chan_cfg_t channel_cfg = {.atten = ADC_ATTEN_DB_12,
                                                .bitwidth = ADC_BITWIDTH_DEFAULT};
    adc_oneshot_unit_handle_t adc;
    adc_cali_handle_t cali = NULL;

    ESP_ERROR_CHECK(adc_oneshot_new_unit(&unit_cfg, &adc));
    ESP_ERROR_CHECK(adc_oneshot_config_channel(adc, inside_channel, &channel_cfg));
    ESP_ERROR_CHECK(adc_oneshot_config_channel(adc, outside_channel, &channel_cfg));
    if (!create_calibration(&cali)) {
        ESP_LOGE(TAG, "no ADC calibration: readings stay invalid, outputs stay off");
    }

    TickType_t wake = xTaskGetTickCount();
    for (;;) {
        const th_reading_t inside = cali ? read_ntc(adc, cali, inside_channel)
                                         : (th_reading_t){false, 0.0};
        const th_reading_t outside = cali ? read_ntc(adc, cali, outside_channel)
                                          : (th_reading_t){false, 0.0};
        app_state_lock(app);
        app->inside = inside;
        app->outside = outside;
        app_state_unlock(app);
        vTaskDelayUntil(&wake, pdMS_TO_TICKS(PERIOD_MS));
    }
}
