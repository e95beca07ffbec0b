#include "suites.h"
#include "thermostat/retry.h"

/* Deterministic random source: returns the same configured value every time. */
static uint32_t fixed_random(void *ctx)
{
    return *(const uint32_t *)ctx;
}

static void backoff_doubles_up_to_the_cap(void **state)
{
    (void)state;
    uint32_t value = 0;
    th_retry_t retry;
    th_retry_init(&retry, 1000, 8000, fixed_random, &value);
    const uint32_t lowest[] = {500, 1000, 2000, 4000, 4000, 4000};
    for (size_t i = 0; i < sizeof lowest / sizeof *lowest; i++) {
        assert_int_equal(th_retry_backoff_ms(&retry), lowest[i]);
    }
}

static void jitter_spreads_each_delay_over_its_upper_half(void **state)
{
    (void)state;
    uint32_t value = 750;
    th_retry_t retry;
    th_retry_init(&retry, 1000, 8000, fixed_random, &value);
    /* c/2 + 750 % (c/2 + 1) for c = 1000, 2000, 4000, 8000 */
    assert_int_equal(th_retry_backoff_ms(&retry), 500 + 750 % 501);
    assert_int_equal(th_retry_backoff_ms(&retry), 1000 + 750);
    assert_int_equal(th_retry_backoff_ms(&retry), 2000 + 750);
    assert_int_equal(th_retry_backoff_ms(&retry), 4000 + 750);
    value = UINT32_MAX;
    th_retry_reset(&retry);
    assert_int_equal(th_retry_backoff_ms(&retry), 500 + UINT32_MAX % 501);
}

static void success_resets_the_backoff(void **state)
{
    (void)state;
    uint32_t value = 0;
    th_retry_t retry;
    th_retry_init(&retry, 1000, 8000, fixed_random, &value);
    th_retry_backoff_ms(&retry);
    th_retry_backoff_ms(&retry);
    const th_retry_action_t done = th_retry_decide(&retry, 201, NULL);
    assert_int_equal(done.kind, TH_RETRY_DONE);
    const th_retry_action_t next = th_retry_decide(&retry, 503, NULL);
    assert_int_equal(next.kind, TH_RETRY_AGAIN);
    assert_int_equal(next.delay_ms, 500);
}

static void transient_failures_back_off(void **state)
{
    (void)state;
    uint32_t value = 0;
    th_retry_t retry;
    th_retry_init(&retry, 1000, 60000, fixed_random, &value);
    const int statuses[] = {0, 500, 503, 408, 302};
    uint32_t expected = 500;
    for (size_t i = 0; i < sizeof statuses / sizeof *statuses; i++) {
        const th_retry_action_t action = th_retry_decide(&retry, statuses[i], NULL);
        assert_int_equal(action.kind, TH_RETRY_AGAIN);
        assert_int_equal(action.delay_ms, expected);
        expected *= 2;
    }
}

static void rate_limit_honours_retry_after(void **state)
{
    (void)state;
    uint32_t value = 0;
    th_retry_t retry;
    th_retry_init(&retry, 1000, 8000, fixed_random, &value);
    th_retry_action_t action = th_retry_decide(&retry, 429, "30");
    assert_int_equal(action.kind, TH_RETRY_AGAIN);
    assert_int_equal(action.delay_ms, 30000);
    action = th_retry_decide(&retry, 429, " 7 ");
    assert_int_equal(action.delay_ms, 7000);
    action = th_retry_decide(&retry, 429, "0");
    assert_int_equal(action.delay_ms, 0);
    action = th_retry_decide(&retry, 429, "99999999999999999999");
    assert_int_equal(action.delay_ms, TH_RETRY_AFTER_MAX_S * 1000);
    assert_int_equal(retry.attempt, 0);
}

static void rate_limit_without_usable_retry_after_backs_off(void **state)
{
    (void)state;
    uint32_t value = 0;
    th_retry_t retry;
    th_retry_init(&retry, 1000, 8000, fixed_random, &value);
    const char *headers[] = {NULL, "", "Wed, 21 Oct 2026 07:28:00 GMT", "12abc", "-5", "1.5"};
    uint32_t expected = 500;
    for (size_t i = 0; i < sizeof headers / sizeof *headers; i++) {
        const th_retry_action_t action = th_retry_decide(&retry, 429, headers[i]);
        assert_int_equal(action.kind, TH_RETRY_AGAIN);
        assert_int_equal(action.delay_ms, expected);
        expected = expected * 2 > 4000 ? 4000 : expected * 2;
    }
}

static void unauthorized_stops_and_other_client_errors_discard(void **state)
{
    (void)state;
    uint32_t value = 0;
    th_retry_t retry;
    th_retry_init(&retry, 1000, 8000, fixed_random, &value);
    assert_int_equal(th_retry_decide(&retry, 401, NULL).kind, TH_RETRY_STOP);
    const int discarded[] = {400, 403, 404, 413, 422};
    for (size_t i = 0; i < sizeof discarded / sizeof *discarded; i++) {
        assert_int_equal(th_retry_decide(&retry, discarded[i], NULL).kind, TH_RETRY_DISCARD);
    }
}

static void parses_retry_after_values(void **state)
{
    (void)state;
    uint32_t seconds = 0;
    assert_true(th_retry_after_parse("120", &seconds));
    assert_int_equal(seconds, 120);
    assert_true(th_retry_after_parse("\t5", &seconds));
    assert_int_equal(seconds, 5);
    assert_true(th_retry_after_parse("3601", &seconds));
    assert_int_equal(seconds, TH_RETRY_AFTER_MAX_S);
    assert_false(th_retry_after_parse("  ", &seconds));
    assert_false(th_retry_after_parse("5 5", &seconds));
    assert_false(th_retry_after_parse("+5", &seconds));
}

int run_retry_tests(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(backoff_doubles_up_to_the_cap),
        cmocka_unit_test(jitter_spreads_each_delay_over_its_upper_half),
        cmocka_unit_test(success_resets_the_backoff),
        cmocka_unit_test(transient_failures_back_off),
        cmocka_unit_test(rate_limit_honours_retry_after),
        cmocka_unit_test(rate_limit_without_usable_retry_after_backs_off),
        cmocka_unit_test(unauthorized_stops_and_other_client_errors_discard),
        cmocka_unit_test(parses_retry_after_values),
    };
    return cmocka_run_group_tests_name("retry", tests, NULL, NULL);
}
