/* Command line of thermostat-sim (see sim_options_usage for the full list). */
#ifndef SIM_OPTIONS_H
#define SIM_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "thermostat/modes.h"

typedef struct {
    const char *url;              /* platform base URL; NULL: taken from provisioning URIs */
    const char *credentials_path; /* required */
    const char *report_path;      /* NULL: no report file */
    uint32_t samples;             /* per device (resolved from --duration when given) */
    uint32_t duration_s;          /* 0 when --duration was not given */
    uint32_t interval_s;          /* simulated seconds between samples */
    double speed;                 /* simulated seconds per wall-clock second; 0 = unpaced */
    bool has_outage;
    uint32_t outage_start; /* first sample index of the outage */
    uint32_t outage_end;   /* last sample index of the outage (inclusive) */
    bool heater_failure;
    bool no_outside_sensor; /* samples carry "temp_outside_c":null */
    uint32_t batch;  /* max samples per upload */
    uint32_t buffer; /* offline buffer capacity per device, in samples */
    uint64_t seed;
    th_mode_t mode;
    double setpoint_c;
    double outside_c;
    uint32_t drain_timeout_s; /* wall-clock seconds to keep uploading after the last sample */
    bool help;
} sim_options_t;

/* Parses argv (long options, "--name value" or "--name=value"); false with a message on error. */
bool sim_options_parse(int argc, char **argv, sim_options_t *opts, char *err, size_t err_cap);

/* Prints the usage text. */
void sim_options_usage(FILE *out, const char *program);

#endif
