/* Outcome of a simulator run: per-device summary, JSON report and exit status. */
#ifndef SIM_REPORT_H
#define SIM_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "sim_device.h"

enum {
    SIM_EXIT_OK = 0,                  /* every sample delivered */
    SIM_EXIT_UNDELIVERED = 1,         /* samples dropped, rejected or still buffered */
    SIM_EXIT_USAGE = 2,               /* bad options or credentials */
    SIM_EXIT_NEEDS_REPROVISIONING = 3 /* a device's key was revoked */
};

/* Final state name of a device: "ok", "needs_reprovisioning" or "undelivered". */
const char *sim_report_state(const sim_device_t *dev);

/* Exit status for the whole run (SIM_EXIT_NEEDS_REPROVISIONING wins over SIM_EXIT_UNDELIVERED). */
int sim_report_exit_code(const sim_device_t *devices, size_t count);

/* Writes the JSON report {"devices":[...],"exit_code":N}; false on a write error. */
bool sim_report_write_json(FILE *out, const sim_device_t *devices, size_t count);

/* Prints one human-readable line per device. */
void sim_report_print(FILE *out, const sim_device_t *devices, size_t count);

#endif
