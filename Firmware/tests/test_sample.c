#include <math.h>
#include <string.h>

#include "suites.h"
#include "thermostat/control.h"
#include "thermostat/sample.h"
#include "thermostat/telemetry_json.h"

#define T_2026_11_29_0700 INT64_C(1795935600)

static th_control_config_t heat_config(void)
{
    th_control_config_t cfg;
    th_control_default_config(&cfg);
    cfg.mode = TH_MODE_HEAT;
    cfg.setpoint_c = 21.5;
    cfg.hysteresis_c = 0.5;
    cfg.min_off_s = 0;
    return cfg;
}

static th_reading_t at(double celsius)
{
    return (th_reading_t){true, celsius};
}

static void builds_a_sample_from_plausible_readings(void **state)
{
    (void)state;
    const th_control_config_t cfg = heat_config();
    th_sample_t s;
    assert_true(th_sample_from_readings(&s, T_2026_11_29_0700, &cfg, TH_OUTPUT_HEAT_ON, at(20.25),
                                        at(-3.5)));
    assert_int_equal(s.timestamp, T_2026_11_29_0700);
    assert_int_equal(s.mode, TH_MODE_HEAT);
    assert_int_equal(s.output, TH_OUTPUT_HEAT_ON);
    assert_true(s.temp_inside_c == 20.25);
    assert_true(s.temp_outside_c == -3.5);
    assert_true(s.setpoint_c == 21.5);
    assert_true(s.hysteresis_c == 0.5);
}

static void a_missing_or_implausible_outdoor_reading_is_sent_as_null(void **state)
{
    (void)state;
    const th_control_config_t cfg = heat_config();
    /* No sensor fitted (the ADC gives no valid reading), or a failed one: open, shorted, absurd. */
    const th_reading_t outside[] = {{false, 0.0}, {false, 5.0},   at(NAN),  at(INFINITY),
                                    at(-INFINITY), at(-40.01),     at(85.01), at(1e12)};
    for (size_t i = 0; i < sizeof outside / sizeof *outside; i++) {
        th_sample_t s;
        char buf[512];
        size_t len;
        assert_true(th_sample_from_readings(&s, T_2026_11_29_0700, &cfg, TH_OUTPUT_OFF, at(20.0),
                                            outside[i]));
        assert_true(isnan(s.temp_outside_c));
        assert_true(s.temp_inside_c == 20.0);
        assert_int_equal(th_json_encode_sample("TH-1", &s, buf, sizeof buf, &len), TH_OK);
        assert_non_null(strstr(buf, ",\"temp_outside_c\":null,"));
        assert_non_null(strstr(buf, "\"temp_inside_c\":20,"));
    }
}

static void the_sensor_range_edges_are_still_readings(void **state)
{
    (void)state;
    const th_control_config_t cfg = heat_config();
    th_sample_t s;
    char buf[512];
    size_t len;
    assert_true(th_sample_from_readings(&s, 0, &cfg, TH_OUTPUT_OFF, at(20.0), at(-40.0)));
    assert_int_equal(th_json_encode_sample("TH-1", &s, buf, sizeof buf, &len), TH_OK);
    assert_non_null(strstr(buf, "\"temp_outside_c\":-40,"));
    assert_true(th_sample_from_readings(&s, 0, &cfg, TH_OUTPUT_OFF, at(20.0), at(85.0)));
    assert_true(s.temp_outside_c == 85.0);
}

static void no_sample_without_a_plausible_inside_reading(void **state)
{
    (void)state;
    const th_control_config_t cfg = heat_config();
    const th_reading_t inside[] = {{false, 20.0}, at(NAN), at(-41.0), at(90.0)};
    for (size_t i = 0; i < sizeof inside / sizeof *inside; i++) {
        th_sample_t s = {.timestamp = 42};
        assert_false(th_sample_from_readings(&s, T_2026_11_29_0700, &cfg, TH_OUTPUT_OFF,
                                             inside[i], at(5.0)));
        assert_int_equal(s.timestamp, 42);
    }
}

static void a_failed_outdoor_sensor_does_not_touch_control(void **state)
{
    (void)state;
    /* The control law reads the inside temperature only (th_control_step has no outdoor
     * input), so heating goes on as usual and its samples still reach the platform. */
    const th_control_config_t cfg = heat_config();
    th_control_t ctl;
    th_sample_t s;
    th_control_init(&ctl, 0);
    const th_output_t output = th_control_step(&ctl, &cfg, at(20.0), 1);
    assert_int_equal(output, TH_OUTPUT_HEAT_ON);
    assert_int_equal(ctl.fault, TH_FAULT_NONE);
    assert_true(th_sample_from_readings(&s, T_2026_11_29_0700, &cfg, output, at(20.0),
                                        (th_reading_t){false, 0.0}));
    assert_int_equal(s.output, TH_OUTPUT_HEAT_ON);
    assert_true(isnan(s.temp_outside_c));
}

int run_sample_tests(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(builds_a_sample_from_plausible_readings),
        cmocka_unit_test(a_missing_or_implausible_outdoor_reading_is_sent_as_null),
        cmocka_unit_test(the_sensor_range_edges_are_still_readings),
        cmocka_unit_test(no_sample_without_a_plausible_inside_reading),
        cmocka_unit_test(a_failed_outdoor_sensor_does_not_touch_control),
    };
    return cmocka_run_group_tests_name("sample", tests, NULL, NULL);
}
