#include <math.h>

#include "suites.h"
#include "thermostat/control.h"

static th_control_config_t config(th_mode_t mode, uint32_t min_on_s, uint32_t min_off_s)
{
    th_control_config_t cfg;
    th_control_default_config(&cfg);
    cfg.mode = mode;
    cfg.setpoint_c = 21.0;
    cfg.hysteresis_c = 1.0;
    cfg.min_on_s = min_on_s;
    cfg.min_off_s = min_off_s;
    return cfg;
}

static th_reading_t at(double celsius)
{
    return (th_reading_t){true, celsius};
}

static void heat_switches_on_at_lower_edge_and_off_at_upper_edge(void **state)
{
    (void)state;
    const th_control_config_t cfg = config(TH_MODE_HEAT, 0, 0);
    th_control_t ctl;
    th_control_init(&ctl, 0);
    assert_int_equal(th_control_step(&ctl, &cfg, at(20.51), 1), TH_OUTPUT_OFF);
    assert_int_equal(th_control_step(&ctl, &cfg, at(20.5), 2), TH_OUTPUT_HEAT_ON);
    assert_int_equal(th_control_step(&ctl, &cfg, at(21.49), 3), TH_OUTPUT_HEAT_ON);
    assert_int_equal(th_control_step(&ctl, &cfg, at(21.5), 4), TH_OUTPUT_OFF);
    assert_int_equal(th_control_step(&ctl, &cfg, at(20.51), 5), TH_OUTPUT_OFF);
}

static void cool_switches_on_at_upper_edge_and_off_at_lower_edge(void **state)
{
    (void)state;
    const th_control_config_t cfg = config(TH_MODE_COOL, 0, 0);
    th_control_t ctl;
    th_control_init(&ctl, 0);
    assert_int_equal(th_control_step(&ctl, &cfg, at(21.49), 1), TH_OUTPUT_OFF);
    assert_int_equal(th_control_step(&ctl, &cfg, at(21.5), 2), TH_OUTPUT_COOL_ON);
    assert_int_equal(th_control_step(&ctl, &cfg, at(20.51), 3), TH_OUTPUT_COOL_ON);
    assert_int_equal(th_control_step(&ctl, &cfg, at(20.5), 4), TH_OUTPUT_OFF);
    assert_int_equal(th_control_step(&ctl, &cfg, at(21.49), 5), TH_OUTPUT_OFF);
}

static void auto_stops_each_output_at_the_setpoint(void **state)
{
    (void)state;
    const th_control_config_t cfg = config(TH_MODE_AUTO, 0, 0);
    th_control_t ctl;
    th_control_init(&ctl, 0);
    assert_int_equal(th_control_step(&ctl, &cfg, at(20.51), 1), TH_OUTPUT_OFF);
    assert_int_equal(th_control_step(&ctl, &cfg, at(20.5), 2), TH_OUTPUT_HEAT_ON);
    assert_int_equal(th_control_step(&ctl, &cfg, at(20.99), 3), TH_OUTPUT_HEAT_ON);
    assert_int_equal(th_control_step(&ctl, &cfg, at(21.0), 4), TH_OUTPUT_OFF);
    assert_int_equal(th_control_step(&ctl, &cfg, at(21.49), 5), TH_OUTPUT_OFF);
    assert_int_equal(th_control_step(&ctl, &cfg, at(21.5), 6), TH_OUTPUT_COOL_ON);
    assert_int_equal(th_control_step(&ctl, &cfg, at(21.01), 7), TH_OUTPUT_COOL_ON);
    assert_int_equal(th_control_step(&ctl, &cfg, at(21.0), 8), TH_OUTPUT_OFF);
}

static void off_mode_never_runs_an_output(void **state)
{
    (void)state;
    const th_control_config_t cfg = config(TH_MODE_OFF, 0, 0);
    th_control_t ctl;
    th_control_init(&ctl, 0);
    assert_int_equal(th_control_step(&ctl, &cfg, at(5.0), 1), TH_OUTPUT_OFF);
    assert_int_equal(th_control_step(&ctl, &cfg, at(35.0), 2), TH_OUTPUT_OFF);
}

static void minimum_on_time_delays_switching_off(void **state)
{
    (void)state;
    const th_control_config_t cfg = config(TH_MODE_HEAT, 180, 300);
    th_control_t ctl;
    th_control_init(&ctl, 0);
    assert_int_equal(th_control_step(&ctl, &cfg, at(19.0), 1000), TH_OUTPUT_HEAT_ON);
    assert_int_equal(th_control_step(&ctl, &cfg, at(22.0), 1100), TH_OUTPUT_HEAT_ON);
    assert_int_equal(th_control_step(&ctl, &cfg, at(22.0), 1179), TH_OUTPUT_HEAT_ON);
    assert_int_equal(th_control_step(&ctl, &cfg, at(22.0), 1180), TH_OUTPUT_OFF);
}

static void minimum_off_time_delays_switching_on(void **state)
{
    (void)state;
    const th_control_config_t cfg = config(TH_MODE_COOL, 0, 300);
    th_control_t ctl;
    th_control_init(&ctl, 0);
    assert_int_equal(th_control_step(&ctl, &cfg, at(23.0), 400), TH_OUTPUT_COOL_ON);
    assert_int_equal(th_control_step(&ctl, &cfg, at(20.0), 500), TH_OUTPUT_OFF);
    assert_int_equal(th_control_step(&ctl, &cfg, at(23.0), 799), TH_OUTPUT_OFF);
    assert_int_equal(th_control_step(&ctl, &cfg, at(23.0), 800), TH_OUTPUT_COOL_ON);
}

static void minimum_off_time_applies_from_boot(void **state)
{
    (void)state;
    const th_control_config_t cfg = config(TH_MODE_HEAT, 180, 300);
    th_control_t ctl;
    th_control_init(&ctl, 1000);
    assert_int_equal(th_control_step(&ctl, &cfg, at(15.0), 1010), TH_OUTPUT_OFF);
    assert_int_equal(th_control_step(&ctl, &cfg, at(15.0), 1299), TH_OUTPUT_OFF);
    assert_int_equal(th_control_step(&ctl, &cfg, at(15.0), 1300), TH_OUTPUT_HEAT_ON);
}

static void sensor_faults_switch_off_at_once(void **state)
{
    (void)state;
    const th_control_config_t cfg = config(TH_MODE_HEAT, 180, 0);
    const th_reading_t faults[] = {{false, 20.0}, {true, NAN}, {true, INFINITY},
                                   {true, -60.0}, {true, 120.0}};
    for (size_t i = 0; i < sizeof faults / sizeof *faults; i++) {
        th_control_t ctl;
        th_control_init(&ctl, 0);
        assert_int_equal(th_control_step(&ctl, &cfg, at(19.0), 10), TH_OUTPUT_HEAT_ON);
        assert_int_equal(th_control_step(&ctl, &cfg, faults[i], 11), TH_OUTPUT_OFF);
        assert_int_equal(ctl.fault, TH_FAULT_SENSOR);
        assert_false(th_reading_plausible(&cfg, faults[i]));
    }
}

static void recovery_after_a_fault_respects_minimum_off_time(void **state)
{
    (void)state;
    const th_control_config_t cfg = config(TH_MODE_HEAT, 0, 300);
    th_control_t ctl;
    th_control_init(&ctl, 0);
    assert_int_equal(th_control_step(&ctl, &cfg, at(19.0), 400), TH_OUTPUT_HEAT_ON);
    assert_int_equal(th_control_step(&ctl, &cfg, (th_reading_t){false, 0.0}, 410), TH_OUTPUT_OFF);
    assert_int_equal(th_control_step(&ctl, &cfg, at(19.0), 420), TH_OUTPUT_OFF);
    assert_int_equal(ctl.fault, TH_FAULT_NONE);
    assert_int_equal(th_control_step(&ctl, &cfg, at(19.0), 710), TH_OUTPUT_HEAT_ON);
}

static void mode_change_switches_a_forbidden_output_off_at_once(void **state)
{
    (void)state;
    th_control_config_t cfg = config(TH_MODE_HEAT, 180, 0);
    th_control_t ctl;
    th_control_init(&ctl, 0);
    assert_int_equal(th_control_step(&ctl, &cfg, at(19.0), 10), TH_OUTPUT_HEAT_ON);
    cfg.mode = TH_MODE_COOL;
    assert_int_equal(th_control_step(&ctl, &cfg, at(19.0), 11), TH_OUTPUT_OFF);
    cfg.mode = TH_MODE_AUTO;
    assert_int_equal(th_control_step(&ctl, &cfg, at(19.0), 12), TH_OUTPUT_HEAT_ON);
    cfg.mode = TH_MODE_OFF;
    assert_int_equal(th_control_step(&ctl, &cfg, at(19.0), 13), TH_OUTPUT_OFF);
}

static void invalid_configuration_is_a_fault(void **state)
{
    (void)state;
    th_control_config_t cfg = config(TH_MODE_HEAT, 0, 0);
    th_control_t ctl;
    th_control_init(&ctl, 0);
    assert_int_equal(th_control_step(&ctl, &cfg, at(19.0), 1), TH_OUTPUT_HEAT_ON);
    cfg.hysteresis_c = -1.0;
    assert_int_equal(th_control_step(&ctl, &cfg, at(19.0), 2), TH_OUTPUT_OFF);
    assert_int_equal(ctl.fault, TH_FAULT_CONFIG);
    cfg.hysteresis_c = 1.0;
    cfg.setpoint_c = NAN;
    assert_int_equal(th_control_step(&ctl, &cfg, at(19.0), 3), TH_OUTPUT_OFF);
    assert_int_equal(ctl.fault, TH_FAULT_CONFIG);
}

static void setpoint_adjustment_is_clamped(void **state)
{
    (void)state;
    assert_true(th_setpoint_adjust(21.0, 0.5) == 21.5);
    assert_true(th_setpoint_adjust(34.8, 0.5) == TH_SETPOINT_MAX_C);
    assert_true(th_setpoint_adjust(5.2, -0.5) == TH_SETPOINT_MIN_C);
    assert_true(th_setpoint_adjust(NAN, 0.5) == TH_SETPOINT_MIN_C);
}

static void modes_have_wire_names(void **state)
{
    (void)state;
    th_mode_t mode;
    assert_string_equal(th_mode_name(TH_MODE_COOL), "COOL");
    assert_string_equal(th_output_name(TH_OUTPUT_HEAT_ON), "HEAT_ON");
    assert_true(th_mode_parse("AUTO", &mode));
    assert_int_equal(mode, TH_MODE_AUTO);
    assert_false(th_mode_parse("auto", &mode));
    assert_int_equal(th_mode_next(TH_MODE_OFF), TH_MODE_HEAT);
    assert_int_equal(th_mode_next(TH_MODE_AUTO), TH_MODE_OFF);
}

int run_control_tests(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(heat_switches_on_at_lower_edge_and_off_at_upper_edge),
        cmocka_unit_test(cool_switches_on_at_upper_edge_and_off_at_lower_edge),
        cmocka_unit_test(auto_stops_each_output_at_the_setpoint),
        cmocka_unit_test(off_mode_never_runs_an_output),
        cmocka_unit_test(minimum_on_time_delays_switching_off),
        cmocka_unit_test(minimum_off_time_delays_switching_on),
        cmocka_unit_test(minimum_off_time_applies_from_boot),
        cmocka_unit_test(sensor_faults_switch_off_at_once),
        cmocka_unit_test(recovery_after_a_fault_respects_minimum_off_time),
        cmocka_unit_test(mode_change_switches_a_forbidden_output_off_at_once),
        cmocka_unit_test(invalid_configuration_is_a_fault),
        cmocka_unit_test(setpoint_adjustment_is_clamped),
        cmocka_unit_test(modes_have_wire_names),
    };
    return cmocka_run_group_tests_name("control", tests, NULL, NULL);
}
