/* One telemetry sample as kept on the device (the serial is added when it is encoded). */
#ifndef THERMOSTAT_SAMPLE_H
#define THERMOSTAT_SAMPLE_H

#include <stdint.h>

#include "thermostat/modes.h"

typedef struct {
    int64_t timestamp; /* seconds since the Unix epoch, UTC */
    th_mode_t mode;
    th_output_t output;
    double temp_inside_c;
    double temp_outside_c;
    double setpoint_c;
    double hysteresis_c;
} th_sample_t;

#endif
