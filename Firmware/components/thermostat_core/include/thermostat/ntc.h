/* NTC thermistor conversion for a voltage divider read by an ADC. */
#ifndef THERMOSTAT_NTC_H
#define THERMOSTAT_NTC_H

#include "thermostat/control.h"

/* Divider: supply -> series resistor -> ADC node -> NTC -> ground. */
typedef struct {
    double supply_mv;
    double series_ohm;
    double r0_ohm; /* NTC resistance at t0_c */
    double t0_c;
    double beta; /* B constant in kelvin, e.g. 3950 */
} th_ntc_t;

/*
 * Converts the node voltage to a temperature with the Beta equation. The reading
 * is invalid when the node sits within 1 % of either rail (open or shorted sensor).
 */
th_reading_t th_ntc_reading(const th_ntc_t *ntc, double node_mv);

#endif
