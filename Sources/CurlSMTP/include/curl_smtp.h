#ifndef CURL_SMTP_H
#define CURL_SMTP_H

#include <stddef.h>

/* How STARTTLS is used on an smtp:// URL (smtps:// is TLS from the first byte). */
typedef enum {
    TSM_TLS_NEVER = 0,
    TSM_TLS_OPPORTUNISTIC = 1,
    TSM_TLS_REQUIRED = 2,
} tsm_tls_mode;

/* Sends one message with libcurl's SMTP client: `payload` is the whole RFC 5322 message
 * (headers, blank line, body) with CRLF line ends. Blocks until the server answered or
 * `timeout_seconds` passed. Returns 0 on success, else libcurl's error code with a message in
 * `error` (NUL-terminated, at most `error_size` bytes). `username` may be NULL. */
int tsm_send_mail(const char *url, const char *username, const char *password, tsm_tls_mode tls,
                  const char *from, const char *const *recipients, int recipient_count,
                  const char *payload, size_t payload_length, long timeout_seconds,
                  char *error, size_t error_size);

#endif
