#include <math.h>
#include <stdio.h>
#include <string.h>

#include "suites.h"
#include "thermostat/telemetry_json.h"
#include "thermostat/timestamp.h"

#define T_2026_11_29_0700 INT64_C(1795935600)

static th_sample_t sample(int64_t timestamp, double inside)
{
    return (th_sample_t){
        .timestamp = timestamp,
        .mode = TH_MODE_AUTO,
        .output = TH_OUTPUT_HEAT_ON,
        .temp_inside_c = inside,
        .temp_outside_c = -3.25,
        .setpoint_c = 21.0,
        .hysteresis_c = 1.0,
    };
}

static void encodes_one_sample_exactly(void **state)
{
    (void)state;
    char buf[512];
    size_t len;
    const th_sample_t s = sample(T_2026_11_29_0700, 20.5);
    assert_int_equal(th_json_encode_sample("TH-0001", &s, buf, sizeof buf, &len), TH_OK);
    assert_string_equal(buf, "{\"device_id\":\"TH-0001\",\"mode\":\"AUTO\",\"temp_inside_c\":20.5,"
                             "\"temp_outside_c\":-3.25,\"setpoint_c\":21,\"hysteresis_c\":1,"
                             "\"output\":\"HEAT_ON\",\"timestamp\":\"2026-11-29T07:00:00Z\"}");
    assert_int_equal(len, strlen(buf));
}

static void a_missing_outside_temperature_is_null(void **state)
{
    (void)state;
    char buf[512];
    size_t len;
    th_sample_t s = sample(T_2026_11_29_0700, 20.5);
    s.temp_outside_c = NAN;
    assert_int_equal(th_json_encode_sample("TH-0001", &s, buf, sizeof buf, &len), TH_OK);
    assert_string_equal(buf, "{\"device_id\":\"TH-0001\",\"mode\":\"AUTO\",\"temp_inside_c\":20.5,"
                             "\"temp_outside_c\":null,\"setpoint_c\":21,\"hysteresis_c\":1,"
                             "\"output\":\"HEAT_ON\",\"timestamp\":\"2026-11-29T07:00:00Z\"}");
    assert_int_equal(len, strlen(buf));

    /* NAN means "no reading" only outside; an infinite reading is still a bug. */
    s.temp_outside_c = INFINITY;
    assert_int_equal(th_json_encode_sample("TH-0001", &s, buf, sizeof buf, &len), TH_ERR_INVALID);
    s.temp_outside_c = NAN;
    s.temp_inside_c = NAN;
    assert_int_equal(th_json_encode_sample("TH-0001", &s, buf, sizeof buf, &len), TH_ERR_INVALID);
    s.temp_inside_c = 20.0;
    s.setpoint_c = NAN;
    assert_int_equal(th_json_encode_sample("TH-0001", &s, buf, sizeof buf, &len), TH_ERR_INVALID);
}

static void a_batch_mixes_samples_with_and_without_outside_temperature(void **state)
{
    (void)state;
    char buf[1024];
    size_t len;
    th_json_batch_t batch;
    const th_sample_t a = sample(T_2026_11_29_0700, 20.5);
    th_sample_t b = sample(T_2026_11_29_0700 + 60, 20.75);
    b.temp_outside_c = NAN;
    th_json_batch_begin(&batch, buf, sizeof buf);
    assert_int_equal(th_json_batch_add(&batch, "TH-1", &a), TH_OK);
    assert_int_equal(th_json_batch_add(&batch, "TH-1", &b), TH_OK);
    assert_int_equal(th_json_batch_finish(&batch, &len), TH_OK);
    assert_int_equal(batch.count, 2);
    const char *first = strstr(buf, "\"temp_outside_c\":-3.25,");
    const char *second = strstr(buf, "\"temp_outside_c\":null,");
    assert_non_null(first);
    assert_non_null(second);
    assert_true(first < second);
    assert_non_null(strstr(second, "07:01:00Z"));
}

static void numbers_are_rounded_to_hundredths(void **state)
{
    (void)state;
    const struct {
        double value;
        const char *text;
    } cases[] = {{19.456, "19.46"}, {0.05, "0.05"}, {-0.004, "0"}, {0.0, "0"},
                 {-12.5, "-12.5"},  {100.1, "100.1"}, {-0.25, "-0.25"}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char buf[512], expected[64];
        size_t len;
        const th_sample_t s = sample(0, cases[i].value);
        assert_int_equal(th_json_encode_sample("d", &s, buf, sizeof buf, &len), TH_OK);
        snprintf(expected, sizeof expected, "\"temp_inside_c\":%s,", cases[i].text);
        assert_non_null(strstr(buf, expected));
    }
}

static void rejects_unrepresentable_samples(void **state)
{
    (void)state;
    char buf[512];
    size_t len;
    const double bad[] = {NAN, INFINITY, -INFINITY, 1e9};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        const th_sample_t s = sample(0, bad[i]);
        assert_int_equal(th_json_encode_sample("d", &s, buf, sizeof buf, &len), TH_ERR_INVALID);
        assert_string_equal(buf, "");
    }
    th_sample_t s = sample(-1, 20.0);
    assert_int_equal(th_json_encode_sample("d", &s, buf, sizeof buf, &len), TH_ERR_INVALID);
    s = sample(0, 20.0);
    assert_int_equal(th_json_encode_sample("", &s, buf, sizeof buf, &len), TH_ERR_INVALID);
    s.mode = (th_mode_t)7;
    assert_int_equal(th_json_encode_sample("d", &s, buf, sizeof buf, &len), TH_ERR_INVALID);
}

static void reports_a_too_small_buffer(void **state)
{
    (void)state;
    char buf[64];
    size_t len = 99;
    const th_sample_t s = sample(0, 20.0);
    assert_int_equal(th_json_encode_sample("d", &s, buf, sizeof buf, &len), TH_ERR_NO_SPACE);
    assert_string_equal(buf, "");
    assert_int_equal(len, 0);
}

static void escapes_strings(void **state)
{
    (void)state;
    char buf[128];
    size_t len;
    assert_int_equal(th_json_quote("a\"b\\c/\n\r\t\b\f\x01\x1f\x7f", buf, sizeof buf, &len),
                     TH_OK);
    assert_string_equal(buf, "\"a\\\"b\\\\c/\\n\\r\\t\\b\\f\\u0001\\u001f\x7f\"");
    assert_int_equal(th_json_quote("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x8c\xa1", buf, sizeof buf,
                                   &len),
                     TH_OK);
    assert_string_equal(buf, "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x8c\xa1\"");
}

static void rejects_malformed_utf8(void **state)
{
    (void)state;
    const char *bad[] = {"\xc3(", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x82",
                         "\xff"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char buf[64];
        size_t len;
        assert_int_equal(th_json_quote(bad[i], buf, sizeof buf, &len), TH_ERR_INVALID);
    }
}

static void encodes_a_batch(void **state)
{
    (void)state;
    char buf[1024];
    size_t len;
    th_json_batch_t batch;
    th_sample_t a = sample(T_2026_11_29_0700, 20.5);
    th_sample_t b = sample(T_2026_11_29_0700 + 60, 20.75);
    b.output = TH_OUTPUT_OFF;
    b.mode = TH_MODE_HEAT;
    th_json_batch_begin(&batch, buf, sizeof buf);
    assert_int_equal(th_json_batch_add(&batch, "A\"1", &a), TH_OK);
    assert_int_equal(th_json_batch_add(&batch, "A\"1", &b), TH_OK);
    assert_int_equal(th_json_batch_finish(&batch, &len), TH_OK);
    assert_string_equal(
        buf, "{\"samples\":["
             "{\"device_id\":\"A\\\"1\",\"mode\":\"AUTO\",\"temp_inside_c\":20.5,"
             "\"temp_outside_c\":-3.25,\"setpoint_c\":21,\"hysteresis_c\":1,"
             "\"output\":\"HEAT_ON\",\"timestamp\":\"2026-11-29T07:00:00Z\"},"
             "{\"device_id\":\"A\\\"1\",\"mode\":\"HEAT\",\"temp_inside_c\":20.75,"
             "\"temp_outside_c\":-3.25,\"setpoint_c\":21,\"hysteresis_c\":1,"
             "\"output\":\"OFF\",\"timestamp\":\"2026-11-29T07:01:00Z\"}]}");
    assert_int_equal(len, strlen(buf));
    assert_int_equal(batch.count, 2);
}

static void an_empty_batch_is_valid(void **state)
{
    (void)state;
    char buf[32];
    size_t len;
    th_json_batch_t batch;
    th_json_batch_begin(&batch, buf, sizeof buf);
    assert_int_equal(th_json_batch_finish(&batch, &len), TH_OK);
    assert_string_equal(buf, "{\"samples\":[]}");
}

static void a_sample_that_does_not_fit_leaves_the_batch_intact(void **state)
{
    (void)state;
    char buf[300];
    char one[300];
    size_t len, one_len;
    th_json_batch_t batch;
    const th_sample_t s = sample(0, 20.0);
    const th_sample_t nan_sample = sample(0, NAN);
    th_json_batch_begin(&batch, buf, sizeof buf);
    assert_int_equal(th_json_batch_add(&batch, "d", &s), TH_OK);
    assert_int_equal(th_json_batch_add(&batch, "d", &s), TH_ERR_NO_SPACE);
    assert_int_equal(th_json_batch_add(&batch, "d", &nan_sample), TH_ERR_INVALID);
    assert_int_equal(th_json_batch_finish(&batch, &len), TH_OK);
    assert_int_equal(th_json_encode_sample("d", &s, one, sizeof one, &one_len), TH_OK);
    assert_int_equal(len, strlen("{\"samples\":[]}") + one_len);
    assert_int_equal(batch.count, 1);
}

static void formats_timestamps(void **state)
{
    (void)state;
    char buf[TH_TIMESTAMP_LEN + 1];
    assert_int_equal(th_timestamp_format(0, buf, sizeof buf), TH_OK);
    assert_string_equal(buf, "1970-01-01T00:00:00Z");
    assert_int_equal(th_timestamp_format(951782400, buf, sizeof buf), TH_OK);
    assert_string_equal(buf, "2000-02-29T00:00:00Z");
    assert_int_equal(th_timestamp_format(T_2026_11_29_0700 + 3599, buf, sizeof buf), TH_OK);
    assert_string_equal(buf, "2026-11-29T07:59:59Z");
    assert_int_equal(th_timestamp_format(INT64_C(253402300799), buf, sizeof buf), TH_OK);
    assert_string_equal(buf, "9999-12-31T23:59:59Z");
    assert_int_equal(th_timestamp_format(INT64_C(253402300800), buf, sizeof buf), TH_ERR_INVALID);
    assert_int_equal(th_timestamp_format(-1, buf, sizeof buf), TH_ERR_INVALID);
    assert_int_equal(th_timestamp_format(0, buf, sizeof buf - 1), TH_ERR_NO_SPACE);
}

int run_telemetry_json_tests(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(encodes_one_sample_exactly),
        cmocka_unit_test(a_missing_outside_temperature_is_null),
        cmocka_unit_test(a_batch_mixes_samples_with_and_without_outside_temperature),
        cmocka_unit_test(numbers_are_rounded_to_hundredths),
        cmocka_unit_test(rejects_unrepresentable_samples),
        cmocka_unit_test(reports_a_too_small_buffer),
        cmocka_unit_test(escapes_strings),
        cmocka_unit_test(rejects_malformed_utf8),
        cmocka_unit_test(encodes_a_batch),
        cmocka_unit_test(an_empty_batch_is_valid),
        cmocka_unit_test(a_sample_that_does_not_fit_leaves_the_batch_intact),
        cmocka_unit_test(formats_timestamps),
    };
    return cmocka_run_group_tests_name("telemetry_json", tests, NULL, NULL);
}
