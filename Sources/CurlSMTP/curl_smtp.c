/* The variadic curl_easy_setopt cannot be called from Swift: this file makes the SMTP calls. */
#include "curl_smtp.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <curl/curl.h>

static pthread_once_t global_init_once = PTHREAD_ONCE_INIT;
static CURLcode global_init_result = CURLE_OK;

static void global_init(void) {
    global_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

typedef struct {
    const char *data;
    size_t remaining;
} upload_state;

static size_t read_payload(char *buffer, size_t size, size_t count, void *user) {
    upload_state *state = user;
    size_t room = size * count;
    size_t chunk = state->remaining < room ? state->remaining : room;
    memcpy(buffer, state->data, chunk);
    state->data += chunk;
    state->remaining -= chunk;
    return chunk;
}

int tsm_send_mail(const char *url, const char *username, const char *password, tsm_tls_mode tls,
                  const char *from, const char *const *recipients, int recipient_count,
                  const char *payload, size_t payload_length, long timeout_seconds,
                  char *error, size_t error_size) {
    pthread_once(&global_init_once, global_init);
    if (error_size > 0) error[0] = '\0';
    if (global_init_result != CURLE_OK) {
        snprintf(error, error_size, "%s", curl_easy_strerror(global_init_result));
        return (int)global_init_result;
    }
    CURL *curl = curl_easy_init();
    if (curl == NULL) {
        snprintf(error, error_size, "curl_easy_init failed");
        return (int)CURLE_FAILED_INIT;
    }
    char curl_error[CURL_ERROR_SIZE];
    curl_error[0] = '\0';
    struct curl_slist *rcpt = NULL;
    for (int i = 0; i < recipient_count; i++) rcpt = curl_slist_append(rcpt, recipients[i]);
    upload_state state = { payload, payload_length };

    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, curl_error);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, timeout_seconds);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, timeout_seconds);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    if (username != NULL) {
        curl_easy_setopt(curl, CURLOPT_USERNAME, username);
        curl_easy_setopt(curl, CURLOPT_PASSWORD, password != NULL ? password : "");
    }
    long use_ssl = tls == TSM_TLS_REQUIRED ? (long)CURLUSESSL_ALL
                 : tls == TSM_TLS_OPPORTUNISTIC ? (long)CURLUSESSL_TRY : (long)CURLUSESSL_NONE;
    curl_easy_setopt(curl, CURLOPT_USE_SSL, use_ssl);
    curl_easy_setopt(curl, CURLOPT_MAIL_FROM, from);
    curl_easy_setopt(curl, CURLOPT_MAIL_RCPT, rcpt);
    curl_easy_setopt(curl, CURLOPT_READFUNCTION, read_payload);
    curl_easy_setopt(curl, CURLOPT_READDATA, &state);
    curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);

    CURLcode result = curl_easy_perform(curl);
    if (result != CURLE_OK) {
        snprintf(error, error_size, "%s", curl_error[0] != '\0' ? curl_error : curl_easy_strerror(result));
    }
    curl_slist_free_all(rcpt);
    curl_easy_cleanup(curl);
    return (int)result;
}
