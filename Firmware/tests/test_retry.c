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
    const th_retry_action_t done = th_retry_decide(&retry, 201, NULL, NULL);
    assert_int_equal(done.kind, TH_RETRY_DONE);
    const th_retry_action_t next = th_retry_decide(&retry, 503, NULL, NULL);
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
        const th_retry_action_t action = th_retry_decide(&retry, statuses[i], NULL, NULL);
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
    th_retry_action_t action = th_retry_decide(&retry, 429, "30", NULL);
    assert_int_equal(action.kind, TH_RETRY_AGAIN);
    assert_int_equal(action.delay_ms, 30000);
    action = th_retry_decide(&retry, 429, " 7 ", NULL);
    assert_int_equal(action.delay_ms, 7000);
    action = th_retry_decide(&retry, 429, "0", NULL);
    assert_int_equal(action.delay_ms, 0);
    action = th_retry_decide(&retry, 429, "99999999999999999999", NULL);
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
        const th_retry_action_t action = th_retry_decide(&retry, 429, headers[i], NULL);
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
    assert_int_equal(th_retry_decide(&retry, 401, NULL, NULL).kind, TH_RETRY_STOP);
    const int discarded[] = {400, 403, 404, 413, 422};
    for (size_t i = 0; i < sizeof discarded / sizeof *discarded; i++) {
        assert_int_equal(th_retry_decide(&retry, discarded[i], NULL, NULL).kind, TH_RETRY_DISCARD);
    }
}

static void other_403_codes_keep_discarding(void **state)
{
    (void)state;
    uint32_t value = 0;
    th_retry_t retry;
    th_retry_init(&retry, 1000, 8000, fixed_random, &value);
    const char *codes[] = {NULL, "", "forbidden", "foreign_origin", "quota_exceeded_soon",
                           "QUOTA_EXCEEDED"};
    for (size_t i = 0; i < sizeof codes / sizeof *codes; i++) {
        assert_int_equal(th_retry_decide(&retry, 403, NULL, codes[i]).kind, TH_RETRY_DISCARD);
    }
    /* The hold codes mean nothing on other statuses. */
    assert_int_equal(th_retry_decide(&retry, 422, NULL, "quota_exceeded").kind, TH_RETRY_DISCARD);
    assert_int_equal(th_retry_decide(&retry, 401, NULL, "tenant_disabled").kind, TH_RETRY_STOP);
    assert_int_equal(th_retry_decide(&retry, 503, NULL, "quota_exceeded").kind, TH_RETRY_AGAIN);
    assert_int_equal(retry.hold_attempt, 0);
}

static void quota_and_disabled_tenant_hold_with_a_long_capped_backoff(void **state)
{
    (void)state;
    uint32_t value = 0;
    th_retry_t retry;
    th_retry_init(&retry, 1000, 8000, fixed_random, &value);
    assert_int_equal(retry.hold_base_ms, TH_RETRY_HOLD_BASE_MS);
    assert_int_equal(retry.hold_max_ms, TH_RETRY_HOLD_MAX_MS);
    /* Lowest delays (c/2): 2.5, 5, 10, 20 min, then 30 min once c is capped at one hour. */
    const uint32_t seconds[] = {150, 300, 600, 1200, 1800, 1800, 1800};
    for (size_t i = 0; i < sizeof seconds / sizeof *seconds; i++) {
        const char *code = i % 2 ? TH_ERROR_TENANT_DISABLED : TH_ERROR_QUOTA_EXCEEDED;
        const th_retry_action_t action = th_retry_decide(&retry, 403, NULL, code);
        assert_int_equal(action.kind, TH_RETRY_HOLD);
        assert_int_equal(action.delay_ms, seconds[i] * 1000u);
    }
    /* Jitter spreads a capped hold over 30..60 min. */
    value = UINT32_MAX;
    const uint32_t half = TH_RETRY_HOLD_MAX_MS / 2;
    assert_int_equal(th_retry_decide(&retry, 403, NULL, TH_ERROR_QUOTA_EXCEEDED).delay_ms,
                     half + UINT32_MAX % (half + 1));
}

static void only_success_ends_the_hold_schedule(void **state)
{
    (void)state;
    uint32_t value = 0;
    th_retry_t retry;
    th_retry_init(&retry, 1000, 8000, fixed_random, &value);
    th_retry_set_hold(&retry, 60000, 600000);
    assert_int_equal(th_retry_decide(&retry, 403, NULL, TH_ERROR_QUOTA_EXCEEDED).delay_ms, 30000);
    /* A transient failure, a reconnect or a discarded batch in between keep the hold count... */
    assert_int_equal(th_retry_decide(&retry, 503, NULL, NULL).delay_ms, 500);
    th_retry_reset(&retry);
    assert_int_equal(th_retry_decide(&retry, 422, NULL, NULL).kind, TH_RETRY_DISCARD);
    assert_int_equal(th_retry_decide(&retry, 403, NULL, TH_ERROR_QUOTA_EXCEEDED).delay_ms, 60000);
    /* ...and a hold resets the transient backoff, since the server did answer. */
    assert_int_equal(th_retry_decide(&retry, 503, NULL, NULL).delay_ms, 500);
    assert_int_equal(th_retry_decide(&retry, 201, NULL, NULL).kind, TH_RETRY_DONE);
    assert_int_equal(th_retry_decide(&retry, 403, NULL, TH_ERROR_TENANT_DISABLED).delay_ms, 30000);
}

static void a_hold_waits_for_a_longer_retry_after(void **state)
{
    (void)state;
    uint32_t value = 0;
    th_retry_t retry;
    th_retry_init(&retry, 1000, 8000, fixed_random, &value);
    th_retry_action_t action = th_retry_decide(&retry, 403, "3600", TH_ERROR_QUOTA_EXCEEDED);
    assert_int_equal(action.kind, TH_RETRY_HOLD);
    assert_int_equal(action.delay_ms, 3600000);
    action = th_retry_decide(&retry, 403, "5", TH_ERROR_QUOTA_EXCEEDED);
    assert_int_equal(action.delay_ms, 300000);
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
        cmocka_unit_test(other_403_codes_keep_discarding),
        cmocka_unit_test(quota_and_disabled_tenant_hold_with_a_long_capped_backoff),
        cmocka_unit_test(only_success_ends_the_hold_schedule),
        cmocka_unit_test(a_hold_waits_for_a_longer_retry_after),
        cmocka_unit_test(parses_retry_after_values),
    };
    return cmocka_run_group_tests_name("retry", tests, NULL, NULL);
}
