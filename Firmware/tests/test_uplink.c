#include <math.h>
#include <stdio.h>
#include <string.h>

#include "suites.h"
#include "thermostat/telemetry_json.h"
#include "thermostat/uplink.h"

#define MAX_CALLS 16
#define BODY_CAP 2048

/* Scripted transport: answers call i with replies[i] and records what was sent. */
typedef struct {
    th_http_response_t replies[MAX_CALLS];
    size_t calls;
    char bodies[MAX_CALLS][BODY_CAP];
    char url[512];
    char authorization[256];
    th_ring_t *ring;     /* when set, the first call pushes `arrivals` samples during the request */
    size_t arrivals;
} fake_transport_t;

typedef struct {
    th_sample_t storage[6];
    th_ring_t ring;
    th_credentials_t creds;
    char body[BODY_CAP];
    fake_transport_t transport;
    uint32_t random_value;
    int locks;
    int unlocks;
    th_uplink_t uplink;
} fixture_t;

static void fake_post(void *ctx, const th_http_request_t *request, th_http_response_t *response)
{
    fake_transport_t *fake = ctx;
    assert_true(fake->calls < MAX_CALLS);
    assert_int_equal(request->body_len, strlen(request->body));
    snprintf(fake->bodies[fake->calls], BODY_CAP, "%s", request->body);
    snprintf(fake->url, sizeof fake->url, "%s", request->url);
    snprintf(fake->authorization, sizeof fake->authorization, "%s", request->authorization);
    for (size_t i = 0; fake->ring != NULL && fake->calls == 0 && i < fake->arrivals; i++) {
        const th_sample_t late = {.timestamp = 1000 + (int64_t)i, .setpoint_c = 21.0};
        th_ring_push(fake->ring, &late);
    }
    *response = fake->replies[fake->calls++];
}

static uint32_t fixed_random(void *ctx)
{
    return *(const uint32_t *)ctx;
}

static void count_lock(void *ctx)
{
    ((fixture_t *)ctx)->locks++;
}

static void count_unlock(void *ctx)
{
    ((fixture_t *)ctx)->unlocks++;
}

static th_http_response_t reply(int status, const char *retry_after, const char *body)
{
    th_http_response_t r;
    memset(&r, 0, sizeof r);
    r.status = status;
    snprintf(r.retry_after, sizeof r.retry_after, "%s", retry_after);
    snprintf(r.body, sizeof r.body, "%s", body);
    return r;
}

static void push(fixture_t *f, int64_t timestamp, double inside)
{
    const th_sample_t s = {
        .timestamp = timestamp,
        .mode = TH_MODE_HEAT,
        .output = TH_OUTPUT_HEAT_ON,
        .temp_inside_c = inside,
        .temp_outside_c = 5.0,
        .setpoint_c = 21.0,
        .hysteresis_c = 1.0,
    };
    th_ring_push(&f->ring, &s);
}

static int setup(void **state)
{
    static fixture_t fixture;
    fixture_t *f = &fixture;
    memset(f, 0, sizeof *f);
    th_ring_init(&f->ring, f->storage, 6);
    assert_int_equal(th_credentials_set(&f->creds, "http://127.0.0.1:8080/", "TH-1", "k3y"),
                     TH_PROV_OK);
    const th_uplink_config_t cfg = {
        .credentials = &f->creds,
        .ring = &f->ring,
        .post = fake_post,
        .post_ctx = &f->transport,
        .random = fixed_random,
        .random_ctx = &f->random_value,
        .body_buf = f->body,
        .body_cap = sizeof f->body,
        .batch_max = 2,
        .backoff_base_ms = 1000,
        .backoff_max_ms = 8000,
        .lock = count_lock,
        .unlock = count_unlock,
        .lock_ctx = f,
    };
    assert_int_equal(th_uplink_init(&f->uplink, &cfg), TH_OK);
    *state = f;
    return 0;
}

static void sends_oldest_first_in_batches(void **state)
{
    fixture_t *f = *state;
    for (int64_t t = 0; t < 5; t++) {
        push(f, 1795935600 + 60 * t, 20.0 + (double)t / 4);
    }
    for (size_t i = 0; i < 3; i++) {
        f->transport.replies[i] = reply(201, "", "{\"accepted\":2,\"duplicates\":0}");
    }
    f->transport.replies[2] = reply(200, "", "{\"accepted\":0,\"duplicates\":1}");

    assert_int_equal(th_uplink_poll(&f->uplink, 0), TH_UPLINK_SENT);
    assert_string_equal(f->transport.url, "http://127.0.0.1:8080/api/telemetry/ingest/");
    assert_string_equal(f->transport.authorization, "Device TH-1:k3y");
    assert_string_equal(
        f->transport.bodies[0],
        "{\"samples\":["
        "{\"device_id\":\"TH-1\",\"mode\":\"HEAT\",\"temp_inside_c\":20,\"temp_outside_c\":5,"
        "\"setpoint_c\":21,\"hysteresis_c\":1,\"output\":\"HEAT_ON\","
        "\"timestamp\":\"2026-11-29T07:00:00Z\"},"
        "{\"device_id\":\"TH-1\",\"mode\":\"HEAT\",\"temp_inside_c\":20.25,\"temp_outside_c\":5,"
        "\"setpoint_c\":21,\"hysteresis_c\":1,\"output\":\"HEAT_ON\","
        "\"timestamp\":\"2026-11-29T07:01:00Z\"}]}");
    assert_int_equal(th_uplink_poll(&f->uplink, 0), TH_UPLINK_SENT);
    assert_non_null(strstr(f->transport.bodies[1], "07:02:00Z"));
    assert_non_null(strstr(f->transport.bodies[1], "07:03:00Z"));
    assert_int_equal(th_uplink_poll(&f->uplink, 0), TH_UPLINK_SENT);
    assert_non_null(strstr(f->transport.bodies[2], "07:04:00Z"));
    assert_int_equal(th_uplink_poll(&f->uplink, 0), TH_UPLINK_IDLE);

    assert_int_equal(f->transport.calls, 3);
    assert_int_equal(f->uplink.stats.acknowledged, 5);
    assert_int_equal(f->uplink.stats.sent, 5);
    assert_int_equal(f->uplink.stats.accepted, 4);
    assert_int_equal(f->uplink.stats.duplicates, 1);
    assert_int_equal(f->locks, f->unlocks);
}

static void keeps_samples_and_backs_off_when_the_network_fails(void **state)
{
    fixture_t *f = *state;
    push(f, 60, 20.0);
    f->transport.replies[1] = reply(201, "", "{\"accepted\":1,\"duplicates\":0}");

    assert_int_equal(th_uplink_poll(&f->uplink, 10000), TH_UPLINK_RETRY);
    assert_int_equal(th_ring_count(&f->ring), 1);
    assert_int_equal(th_uplink_next_attempt_ms(&f->uplink), 10500);
    assert_int_equal(th_uplink_poll(&f->uplink, 10499), TH_UPLINK_WAITING);
    assert_int_equal(f->transport.calls, 1);
    assert_int_equal(th_uplink_poll(&f->uplink, 10500), TH_UPLINK_SENT);
    assert_int_equal(th_ring_count(&f->ring), 0);
    assert_int_equal(f->uplink.stats.sent, 1);
    assert_int_equal(f->uplink.stats.failed_requests, 1);
}

static void honours_retry_after_on_429(void **state)
{
    fixture_t *f = *state;
    push(f, 60, 20.0);
    f->transport.replies[0] = reply(429, "30", "{\"error\":{}}");
    f->transport.replies[1] = reply(201, "", "{\"accepted\":1,\"duplicates\":0}");

    assert_int_equal(th_uplink_poll(&f->uplink, 5000), TH_UPLINK_RETRY);
    assert_int_equal(th_uplink_next_attempt_ms(&f->uplink), 35000);
    assert_int_equal(th_uplink_poll(&f->uplink, 34999), TH_UPLINK_WAITING);
    assert_int_equal(th_uplink_poll(&f->uplink, 35000), TH_UPLINK_SENT);
    assert_int_equal(f->uplink.stats.rate_limited, 1);
    assert_int_equal(f->uplink.stats.sent, 2);
    assert_int_equal(f->uplink.stats.acknowledged, 1);
}

static void stops_for_good_on_401(void **state)
{
    fixture_t *f = *state;
    push(f, 60, 20.0);
    f->transport.replies[0] = reply(401, "", "");

    assert_int_equal(th_uplink_poll(&f->uplink, 0), TH_UPLINK_STOPPED);
    assert_int_equal(f->uplink.state, TH_UPLINK_NEEDS_REPROVISIONING);
    th_uplink_network_up(&f->uplink, 100);
    assert_int_equal(th_uplink_poll(&f->uplink, 100000), TH_UPLINK_STOPPED);
    assert_int_equal(f->transport.calls, 1);
    assert_int_equal(th_ring_count(&f->ring), 1);
}

static void discards_a_batch_the_server_refuses(void **state)
{
    fixture_t *f = *state;
    push(f, 60, 20.0);
    push(f, 120, 20.0);
    push(f, 180, 20.0);
    f->transport.replies[0] = reply(422, "", "{\"error\":{\"code\":\"invalid\"}}");

    assert_int_equal(th_uplink_poll(&f->uplink, 0), TH_UPLINK_DISCARDED);
    assert_int_equal(f->uplink.stats.rejected, 2);
    assert_int_equal(th_ring_count(&f->ring), 1);
    assert_int_equal(th_ring_at(&f->ring, 0)->timestamp, 180);
}

#define QUOTA_EXCEEDED_BODY                                                                     \
    "{\"error\":{\"code\":\"quota_exceeded\",\"message\":\"The tenant has reached its sample "     \
    "quota\"}}"
#define TENANT_DISABLED_BODY                                                                    \
    "{\"error\":{\"code\":\"tenant_disabled\",\"message\":\"An administrator disabled this "      \
    "tenant\"}}"

static void holds_samples_while_the_platform_refuses_and_drains_after_a_2xx(void **state)
{
    fixture_t *f = *state;
    for (int64_t t = 0; t < 5; t++) {
        push(f, 60 * (t + 1), 20.0);
    }
    f->transport.replies[0] = reply(403, "", QUOTA_EXCEEDED_BODY);
    f->transport.replies[1] = reply(403, "", TENANT_DISABLED_BODY);
    for (size_t i = 2; i < 5; i++) {
        f->transport.replies[i] = reply(201, "", "{\"accepted\":2,\"duplicates\":0}");
    }
    f->transport.replies[5] = reply(403, "", QUOTA_EXCEEDED_BODY);

    /* First hold: c = 5 min, the fixed random value 0 gives c/2. Nothing is released. */
    assert_int_equal(th_uplink_poll(&f->uplink, 1000), TH_UPLINK_HELD);
    assert_int_equal(th_ring_count(&f->ring), 5);
    assert_int_equal(th_uplink_next_attempt_ms(&f->uplink), 1000 + 150000);
    assert_int_equal(f->uplink.stats.held, 1);
    assert_int_equal(f->uplink.stats.failed_requests, 1);
    assert_int_equal(f->uplink.stats.rejected, 0);
    assert_int_equal(f->uplink.stats.acknowledged, 0);

    /* No request before the hold is over, not even when connectivity returns. */
    assert_int_equal(th_uplink_poll(&f->uplink, 2000), TH_UPLINK_WAITING);
    th_uplink_network_up(&f->uplink, 3000);
    assert_int_equal(th_uplink_next_attempt_ms(&f->uplink), 151000);
    assert_int_equal(th_uplink_poll(&f->uplink, 3000), TH_UPLINK_WAITING);
    assert_int_equal(th_uplink_poll(&f->uplink, 150999), TH_UPLINK_WAITING);
    assert_int_equal(f->transport.calls, 1);

    /* The same batch again; a disabled tenant holds too, twice as long. */
    assert_int_equal(th_uplink_poll(&f->uplink, 151000), TH_UPLINK_HELD);
    assert_string_equal(f->transport.bodies[1], f->transport.bodies[0]);
    assert_int_equal(th_uplink_next_attempt_ms(&f->uplink), 151000 + 300000);
    assert_int_equal(th_ring_count(&f->ring), 5);

    /* Accepted again: normal sending resumes and drains the buffer oldest first. */
    assert_int_equal(th_uplink_poll(&f->uplink, 451000), TH_UPLINK_SENT);
    assert_string_equal(f->transport.bodies[2], f->transport.bodies[0]);
    assert_int_equal(th_uplink_poll(&f->uplink, 451000), TH_UPLINK_SENT);
    assert_non_null(strstr(f->transport.bodies[3], "T00:03:00Z"));
    assert_int_equal(th_uplink_poll(&f->uplink, 451000), TH_UPLINK_SENT);
    assert_non_null(strstr(f->transport.bodies[4], "T00:05:00Z"));
    assert_int_equal(th_uplink_poll(&f->uplink, 451000), TH_UPLINK_IDLE);
    assert_int_equal(f->uplink.stats.acknowledged, 5);
    assert_int_equal(f->uplink.stats.held, 2);
    assert_int_equal(f->uplink.stats.rejected, 0);
    assert_int_equal(th_ring_dropped(&f->ring), 0);

    /* The 2xx also ended the hold schedule: the next refusal starts again at 5 min. */
    push(f, 360, 20.0);
    assert_int_equal(th_uplink_poll(&f->uplink, 500000), TH_UPLINK_HELD);
    assert_int_equal(th_uplink_next_attempt_ms(&f->uplink), 500000 + 150000);
    assert_int_equal(th_ring_count(&f->ring), 1);
}

static void the_hold_grows_to_its_cap_and_the_ring_keeps_its_overflow_rule(void **state)
{
    fixture_t *f = *state;
    /* Lowest delays (c/2) of successive holds: 2.5, 5, 10, 20, then 30 min (c capped at 1 h). */
    const uint64_t waits_s[] = {150, 300, 600, 1200, 1800, 1800};
    const size_t holds = sizeof waits_s / sizeof *waits_s;
    for (size_t i = 0; i < holds; i++) {
        f->transport.replies[i] =
            reply(403, "", i % 2 ? TENANT_DISABLED_BODY : QUOTA_EXCEEDED_BODY);
    }
    for (size_t i = holds; i < holds + 3; i++) {
        f->transport.replies[i] = reply(200, "", "{\"accepted\":2,\"duplicates\":0}");
    }
    push(f, 60, 20.0);

    uint64_t now = 0;
    int64_t t = 60;
    for (size_t i = 0; i < holds; i++) {
        assert_int_equal(th_uplink_poll(&f->uplink, now), TH_UPLINK_HELD);
        const uint64_t next = th_uplink_next_attempt_ms(&f->uplink);
        assert_int_equal(next - now, waits_s[i] * 1000);
        /* Samples keep coming meanwhile and nothing is sent before the hold is over. */
        push(f, t += 60, 20.0);
        assert_int_equal(th_uplink_poll(&f->uplink, next - 1), TH_UPLINK_WAITING);
        assert_int_equal(f->transport.calls, i + 1);
        now = next;
    }
    /* Seven samples in a ring of six: the oldest is dropped and counted, as during an outage. */
    assert_int_equal(th_ring_count(&f->ring), 6);
    assert_int_equal(th_ring_dropped(&f->ring), 1);
    assert_int_equal(th_ring_at(&f->ring, 0)->timestamp, 120);
    assert_int_equal(f->uplink.stats.held, holds);
    assert_int_equal(f->uplink.stats.rejected, 0);

    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(th_uplink_poll(&f->uplink, now), TH_UPLINK_SENT);
    }
    assert_non_null(strstr(f->transport.bodies[holds], "T00:02:00Z"));
    assert_non_null(strstr(f->transport.bodies[holds + 2], "T00:07:00Z"));
    assert_int_equal(th_uplink_poll(&f->uplink, now), TH_UPLINK_IDLE);
    assert_int_equal(f->uplink.stats.acknowledged, 6);
}

static void discards_on_a_403_with_another_code(void **state)
{
    fixture_t *f = *state;
    push(f, 60, 20.0);
    f->transport.replies[0] =
        reply(403, "", "{\"error\":{\"code\":\"forbidden\",\"message\":\"No\"}}");
    f->transport.replies[1] = reply(403, "", "<html>Forbidden</html>");

    assert_int_equal(th_uplink_poll(&f->uplink, 0), TH_UPLINK_DISCARDED);
    push(f, 120, 20.0);
    assert_int_equal(th_uplink_poll(&f->uplink, 0), TH_UPLINK_DISCARDED);
    assert_int_equal(f->uplink.stats.rejected, 2);
    assert_int_equal(f->uplink.stats.held, 0);
    assert_int_equal(th_ring_count(&f->ring), 0);
}

static void a_configured_hold_replaces_the_default(void **state)
{
    fixture_t *f = *state;
    th_uplink_config_t cfg = f->uplink.cfg;
    cfg.hold_base_ms = 4000;
    cfg.hold_max_ms = 6000;
    assert_int_equal(th_uplink_init(&f->uplink, &cfg), TH_OK);
    push(f, 60, 20.0);
    f->transport.replies[0] = reply(403, "", QUOTA_EXCEEDED_BODY);
    f->transport.replies[1] = reply(403, "", QUOTA_EXCEEDED_BODY);
    assert_int_equal(th_uplink_poll(&f->uplink, 0), TH_UPLINK_HELD);
    assert_int_equal(th_uplink_next_attempt_ms(&f->uplink), 2000);
    assert_int_equal(th_uplink_poll(&f->uplink, 2000), TH_UPLINK_HELD);
    assert_int_equal(th_uplink_next_attempt_ms(&f->uplink), 2000 + 3000);
}

static void buffers_through_an_outage_and_drains_oldest_first(void **state)
{
    fixture_t *f = *state;
    for (int64_t t = 0; t < 8; t++) {
        push(f, 60 * (t + 1), 20.0);
        th_uplink_poll(&f->uplink, 0);
    }
    assert_int_equal(f->transport.calls, 1);
    assert_int_equal(th_ring_dropped(&f->ring), 2);
    assert_int_equal(th_ring_at(&f->ring, 0)->timestamp, 180);

    for (size_t i = 1; i < 4; i++) {
        f->transport.replies[i] = reply(201, "", "{\"accepted\":2,\"duplicates\":0}");
    }
    th_uplink_network_up(&f->uplink, 1);
    assert_int_equal(th_uplink_poll(&f->uplink, 1), TH_UPLINK_SENT);
    assert_non_null(strstr(f->transport.bodies[1], "T00:03:00Z"));
    assert_non_null(strstr(f->transport.bodies[1], "T00:04:00Z"));
    assert_int_equal(th_uplink_poll(&f->uplink, 1), TH_UPLINK_SENT);
    assert_int_equal(th_uplink_poll(&f->uplink, 1), TH_UPLINK_SENT);
    assert_non_null(strstr(f->transport.bodies[3], "T00:08:00Z"));
    assert_int_equal(th_uplink_poll(&f->uplink, 1), TH_UPLINK_IDLE);
    assert_int_equal(f->uplink.stats.acknowledged, 6);
}

static void releases_only_what_was_sent_when_samples_arrive_meanwhile(void **state)
{
    fixture_t *f = *state;
    for (int64_t t = 0; t < 6; t++) {
        push(f, 60 * (t + 1), 20.0);
    }
    f->transport.ring = &f->ring;
    f->transport.arrivals = 1;
    f->transport.replies[0] = reply(201, "", "{\"accepted\":2,\"duplicates\":0}");

    /* The batch holds 60 and 120; the late arrival evicts 60, so only 120 remains to release. */
    assert_int_equal(th_uplink_poll(&f->uplink, 0), TH_UPLINK_SENT);
    assert_int_equal(th_ring_dropped(&f->ring), 1);
    assert_int_equal(th_ring_count(&f->ring), 5);
    assert_int_equal(th_ring_at(&f->ring, 0)->timestamp, 180);
    assert_int_equal(th_ring_at(&f->ring, 4)->timestamp, 1000);
}

static void discards_samples_that_cannot_be_encoded(void **state)
{
    fixture_t *f = *state;
    push(f, 60, NAN);
    push(f, 120, 20.0);
    f->transport.replies[0] = reply(201, "", "{\"accepted\":1,\"duplicates\":0}");

    assert_int_equal(th_uplink_poll(&f->uplink, 0), TH_UPLINK_SENT);
    assert_null(strstr(f->transport.bodies[0], "00:01:00Z"));
    assert_non_null(strstr(f->transport.bodies[0], "00:02:00Z"));
    assert_int_equal(f->uplink.stats.rejected, 1);
    assert_int_equal(th_ring_count(&f->ring), 0);

    push(f, 180, NAN);
    assert_int_equal(th_uplink_poll(&f->uplink, 0), TH_UPLINK_DISCARDED);
    assert_int_equal(f->transport.calls, 1);
    assert_int_equal(f->uplink.stats.rejected, 2);
}

static void init_rejects_unusable_configurations(void **state)
{
    fixture_t *f = *state;
    th_uplink_t uplink;
    th_uplink_config_t cfg = f->uplink.cfg;
    cfg.body_cap = TH_UPLINK_BODY_MIN - 1;
    assert_int_equal(th_uplink_init(&uplink, &cfg), TH_ERR_INVALID);
    cfg = f->uplink.cfg;
    cfg.batch_max = 0;
    assert_int_equal(th_uplink_init(&uplink, &cfg), TH_ERR_INVALID);
    cfg = f->uplink.cfg;
    cfg.post = NULL;
    assert_int_equal(th_uplink_init(&uplink, &cfg), TH_ERR_INVALID);
}

int run_uplink_tests(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(sends_oldest_first_in_batches, setup),
        cmocka_unit_test_setup(keeps_samples_and_backs_off_when_the_network_fails, setup),
        cmocka_unit_test_setup(honours_retry_after_on_429, setup),
        cmocka_unit_test_setup(stops_for_good_on_401, setup),
        cmocka_unit_test_setup(discards_a_batch_the_server_refuses, setup),
        cmocka_unit_test_setup(holds_samples_while_the_platform_refuses_and_drains_after_a_2xx,
                               setup),
        cmocka_unit_test_setup(the_hold_grows_to_its_cap_and_the_ring_keeps_its_overflow_rule,
                               setup),
        cmocka_unit_test_setup(discards_on_a_403_with_another_code, setup),
        cmocka_unit_test_setup(a_configured_hold_replaces_the_default, setup),
        cmocka_unit_test_setup(buffers_through_an_outage_and_drains_oldest_first, setup),
        cmocka_unit_test_setup(releases_only_what_was_sent_when_samples_arrive_meanwhile, setup),
        cmocka_unit_test_setup(discards_samples_that_cannot_be_encoded, setup),
        cmocka_unit_test_setup(init_rejects_unusable_configurations, setup),
    };
    return cmocka_run_group_tests_name("uplink", tests, NULL, NULL);
}
