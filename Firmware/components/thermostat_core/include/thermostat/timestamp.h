/* ISO 8601 UTC timestamps ("2026-11-29T07:00:00Z") without libc time zone handling. */
#ifndef THERMOSTAT_TIMESTAMP_H
#define THERMOSTAT_TIMESTAMP_H

#include <stddef.h>
#include <stdint.h>

#include "thermostat/status.h"

/* Length of a formatted timestamp, without the terminating NUL. */
#define TH_TIMESTAMP_LEN 20

/*
 * Writes `unix_s` (seconds since 1970-01-01T00:00:00Z) as a NUL-terminated
 * "YYYY-MM-DDTHH:MM:SSZ" into `buf`. Years 1970..9999 only (TH_ERR_INVALID
 * otherwise); TH_ERR_NO_SPACE when `cap` < TH_TIMESTAMP_LEN + 1.
 */
th_status_t th_timestamp_format(int64_t unix_s, char *buf, size_t cap);

#endif
