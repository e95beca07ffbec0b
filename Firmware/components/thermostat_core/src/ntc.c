#include "thermostat/ntc.h"

#include <math.h>

#define KELVIN_OFFSET 273.15
#define RAIL_MARGIN 0.01

th_reading_t th_ntc_reading(const th_ntc_t *ntc, double node_mv)
{
    th_reading_t reading = {false, 0.0};
    const double margin = ntc->supply_mv * RAIL_MARGIN;
    if (!(node_mv > margin && node_mv < ntc->supply_mv - margin)) {
        return reading;
    }
    const double r_ntc = ntc->series_ohm * node_mv / (ntc->supply_mv - node_mv);
    const double inv_t = 1.0 / (ntc->t0_c + KELVIN_OFFSET) + log(r_ntc / ntc->r0_ohm) / ntc->beta;
    reading.celsius = 1.0 / inv_t - KELVIN_OFFSET;
    reading.valid = isfinite(reading.celsius);
    return reading;
}
