/* esp_http_client transport for the uplink (HTTPS through the certificate bundle). */
#ifndef HTTP_TRANSPORT_H
#define HTTP_TRANSPORT_H

#include "esp_http_client.h"

#include "thermostat/uplink.h"

typedef struct {
    esp_http_client_handle_t client; /* created on the first request, then kept alive */
    th_http_response_t *response;    /* filled by the event handler during a request */
} http_transport_t;

/* th_http_post_fn: POSTs the JSON body; status 0 when no HTTP answer arrived. */
void http_transport_post(void *transport, const th_http_request_t *request,
                         th_http_response_t *response);

#endif
