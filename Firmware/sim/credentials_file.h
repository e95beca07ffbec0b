/*
 * Credentials file of the simulator: one device per line, either
 *   <serial> <api_key>
 * or a provisioning URI (thermostat://provision?v=1&url=...&serial=...&key=...).
 * Blank lines and lines starting with '#' are ignored.
 */
#ifndef SIM_CREDENTIALS_FILE_H
#define SIM_CREDENTIALS_FILE_H

#include <stdbool.h>
#include <stddef.h>

#include "thermostat/provisioning.h"

typedef enum { SIM_LINE_DEVICE, SIM_LINE_SKIP, SIM_LINE_ERROR } sim_line_t;

/*
 * Parses one line (without its newline). `base_url`, when not NULL, is used for
 * every device and replaces the url of a provisioning URI; a 'serial key' line
 * needs it. On SIM_LINE_ERROR a reason is written to `err`.
 */
sim_line_t sim_credentials_parse_line(const char *line, const char *base_url,
                                      th_credentials_t *creds, char *err, size_t err_cap);

/*
 * Reads every device of the file at `path` into a newly allocated array
 * (`*count` entries, free() it). False with a message naming the line on error,
 * or when the file lists no device.
 */
bool sim_credentials_load(const char *path, const char *base_url, th_credentials_t **devices,
                          size_t *count, char *err, size_t err_cap);

#endif
