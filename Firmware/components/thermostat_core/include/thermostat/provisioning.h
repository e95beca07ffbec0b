/*
 * Device credentials and the provisioning payload carried by the QR code:
 *   thermostat://provision?v=1&url=<base URL>&serial=<serial>&key=<api_key>
 * Values are percent-encoded (RFC 3986; '+' is a literal plus). Scheme and host
 * are case-insensitive, parameters may come in any order, unknown parameters are
 * ignored; anything else malformed is rejected with a specific reason.
 */
#ifndef THERMOSTAT_PROVISIONING_H
#define THERMOSTAT_PROVISIONING_H

#include <stddef.h>

#define TH_URL_MAX 256
#define TH_SERIAL_MAX 64
#define TH_API_KEY_MAX 128
#define TH_PROVISIONING_MAX 1024

typedef struct {
    char url[TH_URL_MAX + 1]; /* platform base URL, e.g. https://thermo.example.com */
    char serial[TH_SERIAL_MAX + 1];
    char api_key[TH_API_KEY_MAX + 1];
} th_credentials_t;

typedef enum {
    TH_PROV_OK = 0,
    TH_PROV_ERR_SCHEME,    /* does not start with thermostat://provision? */
    TH_PROV_ERR_SYNTAX,    /* empty parameter, parameter without '=', fragment or NUL byte */
    TH_PROV_ERR_ENCODING,  /* bad %XX escape, raw non-printable byte, or a decoded control byte */
    TH_PROV_ERR_TOO_LONG,  /* payload or value longer than its limit */
    TH_PROV_ERR_DUPLICATE, /* a known parameter appears twice */
    TH_PROV_ERR_MISSING,   /* v, url, serial or key absent */
    TH_PROV_ERR_VERSION,   /* v is not 1 */
    TH_PROV_ERR_VALUE      /* url not http(s), serial outside [A-Za-z0-9._-], key not printable */
} th_prov_status_t;

/* Parses `len` bytes of `payload` into `creds` (left untouched unless TH_PROV_OK). */
th_prov_status_t th_provision_parse(const char *payload, size_t len, th_credentials_t *creds);

/* Validates and stores already-decoded credentials (same rules as the parser). */
th_prov_status_t th_credentials_set(th_credentials_t *creds, const char *url, const char *serial,
                                    const char *api_key);

/* Human-readable reason for a status, e.g. "duplicate parameter". */
const char *th_prov_status_message(th_prov_status_t status);

#endif
