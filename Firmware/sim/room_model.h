/*
 * First-order thermal model of a room: heat leaks to the outside in proportion to
 * the temperature difference, the heater and cooler add or remove a fixed amount.
 *   dT/dt = -loss * (T - T_out) + heat - cool      (per hour)
 * Integrated exactly over each step, so any step length is stable.
 */
#ifndef SIM_ROOM_MODEL_H
#define SIM_ROOM_MODEL_H

#include <stdbool.h>

#include "thermostat/modes.h"

typedef struct {
    double inside_c;
    double outside_c;
    double loss_per_hour;   /* 1 / time constant in hours */
    double heat_c_per_hour; /* temperature rise rate of the heater alone */
    double cool_c_per_hour; /* temperature fall rate of the cooler alone */
    bool heater_failed;     /* the heater runs but produces no heat */
} room_t;

/* Advances the room by `seconds` with `output` driving the heater or cooler. */
void room_advance(room_t *room, th_output_t output, double seconds);

#endif
