/* libcurl implementation of the uplink's HTTP transport, with a switch that simulates an outage. */
#ifndef SIM_CURL_TRANSPORT_H
#define SIM_CURL_TRANSPORT_H

#include <stdbool.h>

#include <curl/curl.h>

#include "thermostat/uplink.h"

typedef struct {
    CURL *curl;          /* one handle per device, so its connection is kept alive */
    const bool *outage;  /* while *outage is true, requests fail without touching the network */
} curl_transport_t;

/* Creates the curl handle; false when libcurl cannot. curl_global_init must have run. */
bool curl_transport_init(curl_transport_t *transport, const bool *outage);

/* th_http_post_fn: POSTs the JSON body with the device's Authorization header. */
void curl_transport_post(void *transport, const th_http_request_t *request,
                         th_http_response_t *response);

/* Releases the curl handle. */
void curl_transport_cleanup(curl_transport_t *transport);

#endif
