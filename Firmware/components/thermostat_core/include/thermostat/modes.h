/* Operating modes and output states, with their wire names (DESIGN.md "Telemetry sample"). */
#ifndef THERMOSTAT_MODES_H
#define THERMOSTAT_MODES_H

#include <stdbool.h>

typedef enum { TH_MODE_OFF, TH_MODE_HEAT, TH_MODE_COOL, TH_MODE_AUTO } th_mode_t;

typedef enum { TH_OUTPUT_OFF, TH_OUTPUT_HEAT_ON, TH_OUTPUT_COOL_ON } th_output_t;

/* Wire name of a mode: "OFF", "HEAT", "COOL" or "AUTO". */
const char *th_mode_name(th_mode_t mode);

/* Parses a wire name (exact, upper case); returns false when unknown. */
bool th_mode_parse(const char *name, th_mode_t *mode);

/* Mode that follows `mode` when the mode button is pressed (OFF -> HEAT -> COOL -> AUTO -> OFF). */
th_mode_t th_mode_next(th_mode_t mode);

/* Wire name of an output state: "OFF", "HEAT_ON" or "COOL_ON". */
const char *th_output_name(th_output_t output);

#endif
