#include "curl_transport.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#define CONNECT_TIMEOUT_MS 5000L
#define REQUEST_TIMEOUT_MS 15000L
#define RETRY_AFTER "retry-after:"

static void copy_trimmed(char *out, size_t cap, const char *text, size_t len)
{
    while (len > 0 && (*text == ' ' || *text == '\t')) {
        text++;
        len--;
    }
    while (len > 0 && (text[len - 1] == ' ' || text[len - 1] == '\t' || text[len - 1] == '\r' ||
                       text[len - 1] == '\n')) {
        len--;
    }
    if (len >= cap) {
        len = cap - 1;
    }
    memcpy(out, text, len);
    out[len] = '\0';
}

static size_t on_header(char *data, size_t size, size_t count, void *userdata)
{
    th_http_response_t *response = userdata;
    const size_t len = size * count;
    const size_t name_len = strlen(RETRY_AFTER);
    if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) {
        response->retry_after[0] = '\0';
    } else if (len > name_len && strncasecmp(data, RETRY_AFTER, name_len) == 0) {
        copy_trimmed(response->retry_after, sizeof response->retry_after, data + name_len,
                     len - name_len);
    }
    return len;
}

static size_t on_body(char *data, size_t size, size_t count, void *userdata)
{
    th_http_response_t *response = userdata;
    const size_t len = size * count;
    const size_t used = strlen(response->body);
    const size_t room = sizeof response->body - 1 - used;
    const size_t n = len < room ? len : room;
    memcpy(response->body + used, data, n);
    response->body[used + n] = '\0';
    return len;
}

bool curl_transport_init(curl_transport_t *transport, const bool *outage)
{
    transport->curl = curl_easy_init();
    transport->outage = outage;
    return transport->curl != NULL;
}

void curl_transport_post(void *ctx, const th_http_request_t *request, th_http_response_t *response)
{
    curl_transport_t *transport = ctx;
    char authorization[sizeof "Authorization: " + sizeof ((th_uplink_t *)0)->authorization];
    struct curl_slist *headers = NULL;
    long status = 0;

    if (*transport->outage) {
        return;
    }
    snprintf(authorization, sizeof authorization, "Authorization: %s", request->authorization);
    headers = curl_slist_append(headers, "Content-Type: application/json");
    headers = curl_slist_append(headers, "Expect:");
    headers = curl_slist_append(headers, authorization);

    CURL *curl = transport->curl;
    curl_easy_setopt(curl, CURLOPT_URL, request->url);
    curl_easy_setopt(curl, CURLOPT_POST, 1L);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, request->body);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)request->body_len);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, response);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, response);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, REQUEST_TIMEOUT_MS);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "thermostat-sim/1");

    if (curl_easy_perform(curl) == CURLE_OK) {
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
        response->status = (int)status;
    } else {
        memset(response, 0, sizeof *response);
    }
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(headers);
}

void curl_transport_cleanup(curl_transport_t *transport)
{
    curl_easy_cleanup(transport->curl);
    transport->curl = NULL;
}
