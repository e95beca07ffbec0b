#include "credentials_file.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LINE_MAX_LEN (TH_PROVISIONING_MAX + 2)

static sim_line_t line_error(char *err, size_t err_cap, const char *reason)
{
    snprintf(err, err_cap, "%s", reason);
    return SIM_LINE_ERROR;
}

static sim_line_t store(th_credentials_t *creds, const char *url, const char *serial,
                        const char *key, char *err, size_t err_cap)
{
    const th_prov_status_t status = th_credentials_set(creds, url, serial, key);
    if (status != TH_PROV_OK) {
        return line_error(err, err_cap, th_prov_status_message(status));
    }
    return SIM_LINE_DEVICE;
}

static sim_line_t parse_uri(const char *uri, size_t len, const char *base_url,
                            th_credentials_t *creds, char *err, size_t err_cap)
{
    th_credentials_t parsed;
    const th_prov_status_t status = th_provision_parse(uri, len, &parsed);
    if (status != TH_PROV_OK) {
        return line_error(err, err_cap, th_prov_status_message(status));
    }
    if (base_url == NULL) {
        *creds = parsed;
        return SIM_LINE_DEVICE;
    }
    return store(creds, base_url, parsed.serial, parsed.api_key, err, err_cap);
}

sim_line_t sim_credentials_parse_line(const char *line, const char *base_url,
                                      th_credentials_t *creds, char *err, size_t err_cap)
{
    char serial[TH_SERIAL_MAX + 2];
    char key[TH_API_KEY_MAX + 2];
    size_t len = strlen(line);
    while (isspace((unsigned char)*line)) {
        line++;
        len--;
    }
    while (len > 0 && isspace((unsigned char)line[len - 1])) {
        len--;
    }
    if (len == 0 || line[0] == '#') {
        return SIM_LINE_SKIP;
    }
    if (strstr(line, "://") != NULL) {
        return parse_uri(line, len, base_url, creds, err, err_cap);
    }
    const size_t serial_len = strcspn(line, " \t");
    const char *rest = line + serial_len;
    while (*rest == ' ' || *rest == '\t') {
        rest++;
    }
    const size_t key_len = (size_t)(line + len - rest);
    if (key_len == 0 || strcspn(rest, " \t") < key_len) {
        return line_error(err, err_cap, "expected 'serial key' or a provisioning URI");
    }
    if (serial_len >= sizeof serial || key_len >= sizeof key) {
        return line_error(err, err_cap, th_prov_status_message(TH_PROV_ERR_TOO_LONG));
    }
    if (base_url == NULL) {
        return line_error(err, err_cap, "'serial key' lines need --url");
    }
    memcpy(serial, line, serial_len);
    serial[serial_len] = '\0';
    memcpy(key, rest, key_len);
    key[key_len] = '\0';
    return store(creds, base_url, serial, key, err, err_cap);
}

static bool listed(const th_credentials_t *devices, size_t count, const char *serial)
{
    for (size_t i = 0; i < count; i++) {
        if (strcmp(devices[i].serial, serial) == 0) {
            return true;
        }
    }
    return false;
}

static bool append(th_credentials_t **devices, size_t *count, size_t *cap,
                   const th_credentials_t *creds)
{
    if (*count == *cap) {
        const size_t next_cap = *cap == 0 ? 8 : *cap * 2;
        th_credentials_t *grown = realloc(*devices, next_cap * sizeof **devices);
        if (grown == NULL) {
            return false;
        }
        *devices = grown;
        *cap = next_cap;
    }
    (*devices)[(*count)++] = *creds;
    return true;
}

bool sim_credentials_load(const char *path, const char *base_url, th_credentials_t **devices,
                          size_t *count, char *err, size_t err_cap)
{
    FILE *file = fopen(path, "r");
    char line[LINE_MAX_LEN + 1];
    char reason[128];
    size_t cap = 0;
    unsigned line_no = 0;
    bool ok = file != NULL;

    *devices = NULL;
    *count = 0;
    if (!ok) {
        snprintf(err, err_cap, "%s: cannot open", path);
    }
    while (ok && fgets(line, sizeof line, file) != NULL) {
        line_no++;
        const size_t len = strlen(line);
        if (len == sizeof line - 1 && line[len - 1] != '\n' && !feof(file)) {
            snprintf(err, err_cap, "%s:%u: line too long", path, line_no);
            ok = false;
            break;
        }
        th_credentials_t creds;
        const sim_line_t kind = sim_credentials_parse_line(line, base_url, &creds, reason,
                                                           sizeof reason);
        if (kind == SIM_LINE_ERROR) {
            snprintf(err, err_cap, "%s:%u: %s", path, line_no, reason);
            ok = false;
        } else if (kind == SIM_LINE_DEVICE && listed(*devices, *count, creds.serial)) {
            snprintf(err, err_cap, "%s:%u: serial %s is listed twice", path, line_no, creds.serial);
            ok = false;
        } else if (kind == SIM_LINE_DEVICE && !append(devices, count, &cap, &creds)) {
            snprintf(err, err_cap, "out of memory");
            ok = false;
        }
    }
    if (ok && *count == 0) {
        snprintf(err, err_cap, "%s: no devices listed", path);
        ok = false;
    }
    if (file != NULL) {
        fclose(file);
    }
    if (!ok) {
        free(*devices);
        *devices = NULL;
        *count = 0;
    }
    return ok;
}
