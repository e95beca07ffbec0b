#include "thermostat/sample.h"

#include <math.h>

bool th_sample_from_readings(th_sample_t *sample, int64_t timestamp,
                             const th_control_config_t *cfg, th_output_t output,
                             th_reading_t inside, th_reading_t outside)
{
    if (!th_reading_plausible(cfg, inside)) {
        return false;
    }
    *sample = (th_sample_t){
        .timestamp = timestamp,
        .mode = cfg->mode,
        .output = output,
        .temp_inside_c = inside.celsius,
        .temp_outside_c = th_reading_plausible(cfg, outside) ? outside.celsius : NAN,
        .setpoint_c = cfg->setpoint_c,
        .hysteresis_c = cfg->hysteresis_c,
    };
    return true;
}
