#include <math.h>

#include "suites.h"
#include "thermostat/ntc.h"

static const th_ntc_t ntc = {3300.0, 10000.0, 10000.0, 25.0, 3950.0};

static void reads_the_reference_temperature_at_mid_supply(void **state)
{
    (void)state;
    const th_reading_t reading = th_ntc_reading(&ntc, 1650.0);
    assert_true(reading.valid);
    assert_true(fabs(reading.celsius - 25.0) < 1e-9);
}

static void higher_node_voltage_means_colder(void **state)
{
    (void)state;
    /* A 10k B3950 NTC measures about 33.62 kOhm at 0 C. */
    const th_reading_t reading = th_ntc_reading(&ntc, 3300.0 * 33620.6 / 43620.6);
    assert_true(reading.valid);
    assert_true(fabs(reading.celsius) < 0.01);
}

static void open_or_shorted_sensors_are_invalid(void **state)
{
    (void)state;
    assert_false(th_ntc_reading(&ntc, 3299.0).valid);
    assert_false(th_ntc_reading(&ntc, 3300.0).valid);
    assert_false(th_ntc_reading(&ntc, 5.0).valid);
    assert_false(th_ntc_reading(&ntc, NAN).valid);
}

int run_ntc_tests(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reads_the_reference_temperature_at_mid_supply),
        cmocka_unit_test(higher_node_voltage_means_colder),
        cmocka_unit_test(open_or_shorted_sensors_are_invalid),
    };
    return cmocka_run_group_tests_name("ntc", tests, NULL, NULL);
}
