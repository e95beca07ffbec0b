/* Reading the platform's answer to an ingest request. */
#ifndef THERMOSTAT_INGEST_RESPONSE_H
#define THERMOSTAT_INGEST_RESPONSE_H

#include <stddef.h>
#include <stdint.h>

#include "thermostat/status.h"

/*
 * Parses a 2xx ingest body {"accepted":N,"duplicates":M}; other members are
 * skipped. TH_ERR_INVALID unless it is one JSON object holding both counts as
 * non-negative integers.
 */
th_status_t th_ingest_response_parse(const char *body, size_t len, uint32_t *accepted,
                                     uint32_t *duplicates);

#endif
