#include "thermostat/telemetry_json.h"

#include <math.h>
#include <string.h>

#include "thermostat/timestamp.h"

#define BATCH_PREFIX "{\"samples\":["
#define BATCH_SUFFIX "]}"
#define MAX_ABS_NUMBER 1e9

typedef struct {
    char *buf;
    size_t cap;
    size_t len;
    bool overflow;
} writer_t;

static void put_bytes(writer_t *w, const char *bytes, size_t n)
{
    if (w->overflow || n >= w->cap - w->len) {
        w->overflow = true;
        return;
    }
    memcpy(w->buf + w->len, bytes, n);
    w->len += n;
    w->buf[w->len] = '\0';
}

static void put_str(writer_t *w, const char *text)
{
    put_bytes(w, text, strlen(text));
}

/* Length of the valid UTF-8 sequence starting at `s`, or 0 when it is malformed. */
static size_t utf8_sequence_length(const unsigned char *s)
{
    const unsigned char c = s[0];
    unsigned char lo = 0x80, hi = 0xBF;
    size_t n;
    if (c < 0x80) {
        return 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        lo = c == 0xE0 ? 0xA0 : 0x80;
        hi = c == 0xED ? 0x9F : 0xBF;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        lo = c == 0xF0 ? 0x90 : 0x80;
        hi = c == 0xF4 ? 0x8F : 0xBF;
    } else {
        return 0;
    }
    if (s[1] < lo || s[1] > hi) {
        return 0;
    }
    for (size_t i = 2; i < n; i++) {
        if (s[i] < 0x80 || s[i] > 0xBF) {
            return 0;
        }
    }
    return n;
}

static th_status_t put_quoted(writer_t *w, const char *text)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)text;
    put_bytes(w, "\"", 1);
    while (*s != '\0') {
        const size_t n = utf8_sequence_length(s);
        if (n == 0) {
            return TH_ERR_INVALID;
        }
        if (*s == '"' || *s == '\\') {
            const char escaped[2] = {'\\', (char)*s};
            put_bytes(w, escaped, 2);
        } else if (*s == '\n') {
            put_str(w, "\\n");
        } else if (*s == '\r') {
            put_str(w, "\\r");
        } else if (*s == '\t') {
            put_str(w, "\\t");
        } else if (*s == '\b') {
            put_str(w, "\\b");
        } else if (*s == '\f') {
            put_str(w, "\\f");
        } else if (*s < 0x20) {
            const char escaped[6] = {'\\', 'u', '0', '0', hex[*s >> 4], hex[*s & 0xF]};
            put_bytes(w, escaped, 6);
        } else {
            put_bytes(w, (const char *)s, n);
        }
        s += n;
    }
    put_bytes(w, "\"", 1);
    return TH_OK;
}

/* Writes `value` rounded to hundredths, without trailing zeros and never as "-0". */
static th_status_t put_number(writer_t *w, double value)
{
    if (!isfinite(value) || fabs(value) >= MAX_ABS_NUMBER) {
        return TH_ERR_INVALID;
    }
    const long long hundredths = llround(value * 100.0);
    unsigned long long magnitude = (unsigned long long)(hundredths < 0 ? -hundredths : hundredths);
    char digits[32];
    size_t pos = sizeof digits;
    unsigned frac = (unsigned)(magnitude % 100);
    magnitude /= 100;

    if (frac != 0) {
        if (frac % 10 != 0) {
            digits[--pos] = (char)('0' + frac % 10);
        }
        digits[--pos] = (char)('0' + frac / 10);
        digits[--pos] = '.';
    }
    do {
        digits[--pos] = (char)('0' + magnitude % 10);
        magnitude /= 10;
    } while (magnitude != 0);
    if (hundredths < 0) {
        digits[--pos] = '-';
    }
    put_bytes(w, digits + pos, sizeof digits - pos);
    return TH_OK;
}

static th_status_t put_sample(writer_t *w, const char *device_id, const th_sample_t *s)
{
    char timestamp[TH_TIMESTAMP_LEN + 1];
    if (device_id[0] == '\0' || (unsigned)s->mode > TH_MODE_AUTO ||
        (unsigned)s->output > TH_OUTPUT_COOL_ON ||
        th_timestamp_format(s->timestamp, timestamp, sizeof timestamp) != TH_OK) {
        return TH_ERR_INVALID;
    }
    th_status_t status = TH_OK;
    put_str(w, "{\"device_id\":");
    status = put_quoted(w, device_id);
    put_str(w, ",\"mode\":\"");
    put_str(w, th_mode_name(s->mode));
    put_str(w, "\",\"temp_inside_c\":");
    if (status == TH_OK) {
        status = put_number(w, s->temp_inside_c);
    }
    put_str(w, ",\"temp_outside_c\":");
    if (isnan(s->temp_outside_c)) {
        put_str(w, "null");
    } else if (status == TH_OK) {
        status = put_number(w, s->temp_outside_c);
    }
    put_str(w, ",\"setpoint_c\":");
    if (status == TH_OK) {
        status = put_number(w, s->setpoint_c);
    }
    put_str(w, ",\"hysteresis_c\":");
    if (status == TH_OK) {
        status = put_number(w, s->hysteresis_c);
    }
    put_str(w, ",\"output\":\"");
    put_str(w, th_output_name(s->output));
    put_str(w, "\",\"timestamp\":\"");
    put_str(w, timestamp);
    put_str(w, "\"}");
    return status;
}

static th_status_t finish(const writer_t *w, th_status_t status, size_t *len)
{
    if (status == TH_OK && w->overflow) {
        status = TH_ERR_NO_SPACE;
    }
    if (status != TH_OK && w->cap > 0) {
        w->buf[0] = '\0';
    }
    *len = status == TH_OK ? w->len : 0;
    return status;
}

th_status_t th_json_quote(const char *text, char *buf, size_t cap, size_t *len)
{
    writer_t w = {buf, cap, 0, false};
    return finish(&w, put_quoted(&w, text), len);
}

th_status_t th_json_encode_sample(const char *device_id, const th_sample_t *sample, char *buf,
                                  size_t cap, size_t *len)
{
    writer_t w = {buf, cap, 0, false};
    return finish(&w, put_sample(&w, device_id, sample), len);
}

void th_json_batch_begin(th_json_batch_t *batch, char *buf, size_t cap)
{
    writer_t w = {buf, cap, 0, false};
    put_str(&w, BATCH_PREFIX);
    batch->buf = buf;
    batch->cap = cap;
    batch->len = w.len;
    batch->count = 0;
    batch->overflow = w.overflow;
}

th_status_t th_json_batch_add(th_json_batch_t *batch, const char *device_id,
                              const th_sample_t *sample)
{
    if (batch->overflow) {
        return TH_ERR_NO_SPACE;
    }
    writer_t w = {batch->buf, batch->cap, batch->len, false};
    if (batch->count > 0) {
        put_str(&w, ",");
    }
    th_status_t status = put_sample(&w, device_id, sample);
    if (status == TH_OK && (w.overflow || strlen(BATCH_SUFFIX) >= w.cap - w.len)) {
        status = TH_ERR_NO_SPACE;
    }
    if (status != TH_OK) {
        batch->buf[batch->len] = '\0';
        return status;
    }
    batch->len = w.len;
    batch->count++;
    return TH_OK;
}

th_status_t th_json_batch_finish(th_json_batch_t *batch, size_t *len)
{
    writer_t w = {batch->buf, batch->cap, batch->len, batch->overflow};
    put_str(&w, BATCH_SUFFIX);
    return finish(&w, TH_OK, len);
}
