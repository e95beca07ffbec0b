#include "thermostat/provisioning.h"

#include <stdbool.h>
#include <string.h>

#define PREFIX "thermostat://provision?"
#define VERSION_MAX 8

typedef struct {
    const char *name;
    char *out;
    size_t cap;                  /* bytes available in `out`, including the NUL */
    th_prov_status_t if_too_long; /* what an overlong value means for this parameter */
    bool seen;
} param_t;

static char lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

static bool starts_with_nocase(const char *text, size_t len, const char *prefix)
{
    const size_t n = strlen(prefix);
    if (len < n) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (lower(text[i]) != prefix[i]) {
            return false;
        }
    }
    return true;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c = lower(c);
    return (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
}

static bool printable(unsigned char c)
{
    return c > 0x20 && c < 0x7f;
}

/* Percent-decodes [value, end) into out[cap]; decoded bytes must not be control characters. */
static th_prov_status_t decode(const char *value, const char *end, char *out, size_t cap)
{
    size_t n = 0;
    while (value < end) {
        unsigned char c = (unsigned char)*value++;
        if (c == '%') {
            const int hi = end - value >= 2 ? hex_value(value[0]) : -1;
            const int lo = hi >= 0 ? hex_value(value[1]) : -1;
            if (lo < 0) {
                return TH_PROV_ERR_ENCODING;
            }
            c = (unsigned char)(hi * 16 + lo);
            value += 2;
            if (c < 0x20 || c == 0x7f) {
                return TH_PROV_ERR_ENCODING;
            }
        } else if (!printable(c)) {
            return TH_PROV_ERR_ENCODING;
        }
        if (n + 1 >= cap) {
            return TH_PROV_ERR_TOO_LONG;
        }
        out[n++] = (char)c;
    }
    out[n] = '\0';
    return TH_PROV_OK;
}

static param_t *find_param(param_t *params, size_t count, const char *name, size_t len)
{
    for (size_t i = 0; i < count; i++) {
        if (strlen(params[i].name) == len && memcmp(params[i].name, name, len) == 0) {
            return &params[i];
        }
    }
    return NULL;
}

static th_prov_status_t parse_query(const char *p, const char *end, param_t *params, size_t count)
{
    for (const char *c = p; c < end; c++) {
        if (*c == '#' || *c == '\0') {
            return TH_PROV_ERR_SYNTAX;
        }
    }
    while (p < end) {
        const char *seg_end = memchr(p, '&', (size_t)(end - p));
        if (seg_end == NULL) {
            seg_end = end;
        }
        const char *eq = memchr(p, '=', (size_t)(seg_end - p));
        if (eq == NULL || eq == p || (seg_end < end && seg_end + 1 == end)) {
            return TH_PROV_ERR_SYNTAX;
        }
        param_t *param = find_param(params, count, p, (size_t)(eq - p));
        if (param != NULL) {
            if (param->seen) {
                return TH_PROV_ERR_DUPLICATE;
            }
            param->seen = true;
            const th_prov_status_t status = decode(eq + 1, seg_end, param->out, param->cap);
            if (status != TH_PROV_OK) {
                return status == TH_PROV_ERR_TOO_LONG ? param->if_too_long : status;
            }
        }
        p = seg_end < end ? seg_end + 1 : end;
    }
    return TH_PROV_OK;
}

th_prov_status_t th_provision_parse(const char *payload, size_t len, th_credentials_t *creds)
{
    char version[VERSION_MAX];
    char url[TH_URL_MAX + 1];
    char serial[TH_SERIAL_MAX + 1];
    char key[TH_API_KEY_MAX + 1];
    param_t params[] = {
        {"v", version, sizeof version, TH_PROV_ERR_VERSION, false},
        {"url", url, sizeof url, TH_PROV_ERR_TOO_LONG, false},
        {"serial", serial, sizeof serial, TH_PROV_ERR_TOO_LONG, false},
        {"key", key, sizeof key, TH_PROV_ERR_TOO_LONG, false},
    };

    if (len > TH_PROVISIONING_MAX) {
        return TH_PROV_ERR_TOO_LONG;
    }
    if (!starts_with_nocase(payload, len, PREFIX)) {
        return TH_PROV_ERR_SCHEME;
    }
    const th_prov_status_t status =
        parse_query(payload + strlen(PREFIX), payload + len, params, sizeof params / sizeof *params);
    if (status != TH_PROV_OK) {
        return status;
    }
    if (!params[0].seen) {
        return TH_PROV_ERR_MISSING;
    }
    if (strcmp(version, "1") != 0) {
        return TH_PROV_ERR_VERSION;
    }
    if (!params[1].seen || !params[2].seen || !params[3].seen) {
        return TH_PROV_ERR_MISSING;
    }
    return th_credentials_set(creds, url, serial, key);
}

static bool valid_url(const char *url)
{
    size_t skip;
    if (starts_with_nocase(url, strlen(url), "https://")) {
        skip = strlen("https://");
    } else if (starts_with_nocase(url, strlen(url), "http://")) {
        skip = strlen("http://");
    } else {
        return false;
    }
    if (url[skip] == '\0' || url[skip] == '/') {
        return false;
    }
    for (const char *c = url; *c != '\0'; c++) {
        if (!printable((unsigned char)*c) || *c == '?' || *c == '#') {
            return false;
        }
    }
    return true;
}

static bool valid_serial(const char *serial)
{
    for (const char *c = serial; *c != '\0'; c++) {
        const bool alnum = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                           (*c >= '0' && *c <= '9');
        if (!alnum && *c != '.' && *c != '_' && *c != '-') {
            return false;
        }
    }
    return serial[0] != '\0';
}

static bool valid_key(const char *key)
{
    for (const char *c = key; *c != '\0'; c++) {
        if (!printable((unsigned char)*c)) {
            return false;
        }
    }
    return key[0] != '\0';
}

th_prov_status_t th_credentials_set(th_credentials_t *creds, const char *url, const char *serial,
                                    const char *api_key)
{
    if (strlen(url) > TH_URL_MAX || strlen(serial) > TH_SERIAL_MAX ||
        strlen(api_key) > TH_API_KEY_MAX) {
        return TH_PROV_ERR_TOO_LONG;
    }
    if (!valid_url(url) || !valid_serial(serial) || !valid_key(api_key)) {
        return TH_PROV_ERR_VALUE;
    }
    strcpy(creds->url, url);
    strcpy(creds->serial, serial);
    strcpy(creds->api_key, api_key);
    return TH_PROV_OK;
}

const char *th_prov_status_message(th_prov_status_t status)
{
    switch (status) {
    case TH_PROV_OK:
        return "ok";
    case TH_PROV_ERR_SCHEME:
        return "not a thermostat://provision? payload";
    case TH_PROV_ERR_SYNTAX:
        return "malformed parameter list";
    case TH_PROV_ERR_ENCODING:
        return "bad percent-encoding";
    case TH_PROV_ERR_TOO_LONG:
        return "value too long";
    case TH_PROV_ERR_DUPLICATE:
        return "duplicate parameter";
    case TH_PROV_ERR_MISSING:
        return "missing parameter (v, url, serial and key are required)";
    case TH_PROV_ERR_VERSION:
        return "unsupported payload version (expected v=1)";
    case TH_PROV_ERR_VALUE:
        return "invalid url, serial or key";
    }
    return "unknown error";
}
