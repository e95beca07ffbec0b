#include "http_transport.h"

#include <string.h>
#include <strings.h>

#include "esp_crt_bundle.h"
#include "esp_log.h"

#define TIMEOUT_MS 10000

static const char *TAG = "http";

static esp_err_t on_event(esp_http_client_event_t *event)
{
    http_transport_t *transport = event->user_data;
    th_http_response_t *response = transport->response;
    if (response == NULL) {
        return ESP_OK;
    }
    if (event->event_id == HTTP_EVENT_ON_HEADER &&
        strcasecmp(event->header_key, "Retry-After") == 0) {
        strlcpy(response->retry_after, event->header_value, sizeof response->retry_after);
    } else if (event->event_id == HTTP_EVENT_ON_DATA && event->data_len > 0) {
        const size_t used = strlen(response->body);
        const size_t room = sizeof response->body - 1 - used;
        const size_t n = (size_t)event->data_len < room ? (size_t)event->data_len : room;
        memcpy(response->body + used, event->data, n);
        response->body[used + n] = '\0';
    }
    return ESP_OK;
}

static bool ensure_client(http_transport_t *transport, const char *url)
{
    if (transport->client != NULL) {
        return true;
    }
    const esp_http_client_config_t config = {
        .url = url,
        .method = HTTP_METHOD_POST,
        .timeout_ms = TIMEOUT_MS,
        .event_handler = on_event,
        .user_data = transport,
        .crt_bundle_attach = esp_crt_bundle_attach,
        .keep_alive_enable = true,
    };
    transport->client = esp_http_client_init(&config);
    return transport->client != NULL;
}

void http_transport_post(void *ctx, const th_http_request_t *request, th_http_response_t *response)
{
    http_transport_t *transport = ctx;
    if (!ensure_client(transport, request->url)) {
        return;
    }
    esp_http_client_handle_t client = transport->client;
    transport->response = response;
    esp_http_client_set_url(client, request->url);
    esp_http_client_set_method(client, HTTP_METHOD_POST);
    esp_http_client_set_header(client, "Content-Type", "application/json");
    esp_http_client_set_header(client, "Authorization", request->authorization);
    esp_http_client_set_post_field(client, request->body, (int)request->body_len);

    const esp_err_t err = esp_http_client_perform(client);
    if (err == ESP_OK) {
        response->status = esp_http_client_get_status_code(client);
    } else {
        ESP_LOGW(TAG, "upload failed: %s", esp_err_to_name(err));
        memset(response, 0, sizeof *response);
        esp_http_client_close(client);
    }
    transport->response = NULL;
}
