/* One telemetry sample as kept on the device (the serial is added when it is encoded). */
#ifndef THERMOSTAT_SAMPLE_H
#define THERMOSTAT_SAMPLE_H

#include <stdbool.h>
#include <stdint.h>

#include "thermostat/control.h"
#include "thermostat/modes.h"

typedef struct {
    int64_t timestamp; /* seconds since the Unix epoch, UTC */
    th_mode_t mode;
    th_output_t output;
    double temp_inside_c;
    double temp_outside_c; /* NAN: no outdoor reading, sent as "temp_outside_c":null */
    double setpoint_c;
    double hysteresis_c;
} th_sample_t;

/*
 * Builds the sample taken at `timestamp` from the controller's settings, the
 * output it drives and the latest readings. False (no sample: the platform
 * requires the inside temperature) when `inside` is not plausible for `cfg`
 * (see th_reading_plausible). An outdoor reading that is missing or not
 * plausible (no outdoor sensor fitted, or a failed one) does not cost the
 * sample: temp_outside_c is NAN and the sample is sent with a null outside
 * temperature. Control never reads the outdoor sensor either.
 */
bool th_sample_from_readings(th_sample_t *sample, int64_t timestamp,
                             const th_control_config_t *cfg, th_output_t output,
                             th_reading_t inside, th_reading_t outside);

#endif
