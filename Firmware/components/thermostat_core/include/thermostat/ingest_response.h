/* Reading the platform's answer to an ingest request: the counts of a 2xx, the code of an error. */
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

/* Longest error code kept by th_error_code_parse, without the NUL. */
#define TH_ERROR_CODE_MAX 31

/*
 * Reads the code of an error body {"error":{"code":"...","message":...}} into
 * code[TH_ERROR_CODE_MAX + 1]. Other members, at either level, are skipped. The
 * body may be cut short after the code (the uplink keeps only the start of an
 * answer): reading stops as soon as the code is known. TH_ERR_INVALID when no
 * code is found before the body ends or stops being JSON, or the code is not a
 * plain string (no escapes) of 1..TH_ERROR_CODE_MAX bytes; `code` is then "".
 */
th_status_t th_error_code_parse(const char *body, size_t len, char *code);

#endif
