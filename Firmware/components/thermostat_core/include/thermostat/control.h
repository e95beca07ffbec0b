/*
 * Thermostat control law.
 *
 * The hysteresis is the width of a band centred on the setpoint:
 * lower = setpoint - hysteresis/2, upper = setpoint + hysteresis/2.
 *   HEAT: the heater switches on at T <= lower and off at T >= upper.
 *   COOL: the cooler switches on at T >= upper and off at T <= lower.
 *   AUTO: heating starts at T <= lower, cooling at T >= upper, and either stops
 *         when T reaches the setpoint, so the two never fight.
 * Compressor protection: after switching on, an output stays on for min_on_s
 * before the control law may switch it off; after switching off (and after
 * boot), nothing switches on for min_off_s. A sensor fault, an invalid
 * configuration or a mode that forbids the running output switch it off at
 * once: safety beats compressor wear.
 */
#ifndef THERMOSTAT_CONTROL_H
#define THERMOSTAT_CONTROL_H

#include <stdbool.h>
#include <stdint.h>

#include "thermostat/modes.h"

#define TH_SETPOINT_MIN_C 5.0
#define TH_SETPOINT_MAX_C 35.0

typedef struct {
    th_mode_t mode;
    double setpoint_c;
    double hysteresis_c;
    uint32_t min_on_s;
    uint32_t min_off_s;
    double sensor_min_c; /* readings outside [min, max] are treated as a sensor fault */
    double sensor_max_c;
} th_control_config_t;

/* One temperature reading; `valid` is false when the sensor did not answer. */
typedef struct {
    bool valid;
    double celsius;
} th_reading_t;

typedef enum { TH_FAULT_NONE, TH_FAULT_SENSOR, TH_FAULT_CONFIG } th_fault_t;

typedef struct {
    th_output_t output;
    int64_t last_switch_s;
    th_fault_t fault;
} th_control_t;

/* Fills `cfg` with safe defaults: AUTO, 21 C, 1 C band, 3 min on, 5 min off, sensor range -40..85 C. */
void th_control_default_config(th_control_config_t *cfg);

/* Starts the controller with outputs off at monotonic time `now_s` (min_off_s applies from boot). */
void th_control_init(th_control_t *ctl, int64_t now_s);

/* True when `reading` is present, finite and inside the configured sensor range. */
bool th_reading_plausible(const th_control_config_t *cfg, th_reading_t reading);

/* Runs one control decision at monotonic time `now_s` and returns the output to drive. */
th_output_t th_control_step(th_control_t *ctl, const th_control_config_t *cfg, th_reading_t inside,
                            int64_t now_s);

/* Returns `setpoint_c + delta_c` clamped to [TH_SETPOINT_MIN_C, TH_SETPOINT_MAX_C]. */
double th_setpoint_adjust(double setpoint_c, double delta_c);

#endif
