/*
 * Telemetry JSON encoding (DESIGN.md "Telemetry sample") into caller-supplied buffers.
 * Every function NUL-terminates its output; lengths exclude the NUL. Numbers are
 * written with at most two decimals ("21.5", "20", "-3.25"), timestamps as
 * "YYYY-MM-DDTHH:MM:SSZ". Nothing here allocates or depends on the C locale.
 */
#ifndef THERMOSTAT_TELEMETRY_JSON_H
#define THERMOSTAT_TELEMETRY_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include "thermostat/sample.h"
#include "thermostat/status.h"

/*
 * Writes `text` (UTF-8) as a quoted JSON string, escaping quotes, backslashes and
 * control characters. TH_ERR_INVALID for malformed UTF-8.
 */
th_status_t th_json_quote(const char *text, char *buf, size_t cap, size_t *len);

/*
 * Encodes one sample as a JSON object. A NAN temp_outside_c (no outdoor reading)
 * is written as "temp_outside_c":null. TH_ERR_INVALID when the serial is empty or
 * not UTF-8, another number is not finite (or any is absurdly large), or the
 * timestamp is outside 1970..9999.
 */
th_status_t th_json_encode_sample(const char *device_id, const th_sample_t *sample, char *buf,
                                  size_t cap, size_t *len);

/* Incremental writer for a batch document {"samples":[...]} in a fixed buffer. */
typedef struct {
    char *buf;
    size_t cap;
    size_t len;
    size_t count;
    bool overflow;
} th_json_batch_t;

/* Starts an empty batch in `buf`. */
void th_json_batch_begin(th_json_batch_t *batch, char *buf, size_t cap);

/*
 * Appends one sample. On TH_ERR_NO_SPACE (the sample and the closing "]}" do not
 * fit) or TH_ERR_INVALID the batch is left exactly as it was.
 */
th_status_t th_json_batch_add(th_json_batch_t *batch, const char *device_id,
                              const th_sample_t *sample);

/* Closes the document; `*len` receives its length. TH_ERR_NO_SPACE if even "]}" did not fit. */
th_status_t th_json_batch_finish(th_json_batch_t *batch, size_t *len);

#endif
