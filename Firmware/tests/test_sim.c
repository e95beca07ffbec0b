#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <math.h>

#include "credentials_file.h"
#include "options.h"
#include "room_model.h"
#include "suites.h"

static bool parse_args(sim_options_t *opts, char *err, size_t err_cap, int argc, char **argv)
{
    return sim_options_parse(argc, argv, opts, err, err_cap);
}

static void options_have_defaults(void **state)
{
    (void)state;
    char err[256];
    sim_options_t opts;
    char *argv[] = {"sim", "--credentials", "devices.txt"};
    assert_true(parse_args(&opts, err, sizeof err, 3, argv));
    assert_null(opts.url);
    assert_string_equal(opts.credentials_path, "devices.txt");
    assert_int_equal(opts.samples, 60);
    assert_int_equal(opts.interval_s, 60);
    assert_int_equal(opts.batch, 20);
    assert_false(opts.has_outage);
    assert_false(opts.no_outside_sensor);
    assert_int_equal(opts.mode, TH_MODE_AUTO);
}

static void options_parse_every_flag(void **state)
{
    (void)state;
    char err[256];
    sim_options_t opts;
    char *argv[] = {"sim",         "--url",     "http://127.0.0.1:8080", "--credentials=c.txt",
                    "--samples",   "30",        "--interval",            "10",
                    "--speed",     "600",       "--outage",              "5:9",
                    "--heater-failure",         "--batch",               "7",
                    "--buffer",    "16",        "--seed",                "42",
                    "--mode",      "HEAT",      "--setpoint",            "19.5",
                    "--outside-temp",           "-10",                   "--report",
                    "r.json",      "--drain-timeout",                    "9",
                    "--no-outside-sensor"};
    assert_true(parse_args(&opts, err, sizeof err, (int)(sizeof argv / sizeof *argv), argv));
    assert_string_equal(opts.url, "http://127.0.0.1:8080");
    assert_string_equal(opts.credentials_path, "c.txt");
    assert_int_equal(opts.samples, 30);
    assert_int_equal(opts.interval_s, 10);
    assert_true(opts.speed == 600.0);
    assert_true(opts.has_outage);
    assert_int_equal(opts.outage_start, 5);
    assert_int_equal(opts.outage_end, 9);
    assert_true(opts.heater_failure);
    assert_int_equal(opts.batch, 7);
    assert_int_equal(opts.buffer, 16);
    assert_int_equal(opts.seed, 42);
    assert_int_equal(opts.mode, TH_MODE_HEAT);
    assert_true(opts.setpoint_c == 19.5);
    assert_true(opts.outside_c == -10.0);
    assert_string_equal(opts.report_path, "r.json");
    assert_int_equal(opts.drain_timeout_s, 9);
    assert_true(opts.no_outside_sensor);
}

static void duration_sets_the_number_of_samples(void **state)
{
    (void)state;
    char err[256];
    sim_options_t opts;
    char *argv[] = {"sim", "--credentials", "c", "--duration", "3600", "--interval", "300"};
    assert_true(parse_args(&opts, err, sizeof err, 7, argv));
    assert_int_equal(opts.samples, 12);
}

static void options_reject_bad_usage(void **state)
{
    (void)state;
    char err[256];
    sim_options_t opts;
    char *no_credentials[] = {"sim", "--samples", "3"};
    char *unknown[] = {"sim", "--credentials", "c", "--verbose"};
    char *missing_value[] = {"sim", "--credentials", "c", "--samples"};
    char *bad_number[] = {"sim", "--credentials", "c", "--samples", "3x"};
    char *negative[] = {"sim", "--credentials", "c", "--batch", "-1"};
    char *reversed_outage[] = {"sim", "--credentials", "c", "--outage", "9:5"};
    char *bad_outage[] = {"sim", "--credentials", "c", "--outage", "5"};
    char *both[] = {"sim", "--credentials", "c", "--samples", "3", "--duration", "60"};
    char *flag_value[] = {"sim", "--credentials", "c", "--heater-failure=yes"};
    char *bad_mode[] = {"sim", "--credentials", "c", "--mode", "heat"};
    char *positional[] = {"sim", "--credentials", "c", "extra"};
    assert_false(parse_args(&opts, err, sizeof err, 3, no_credentials));
    assert_non_null(strstr(err, "--credentials"));
    assert_false(parse_args(&opts, err, sizeof err, 4, unknown));
    assert_non_null(strstr(err, "--verbose"));
    assert_false(parse_args(&opts, err, sizeof err, 4, missing_value));
    assert_false(parse_args(&opts, err, sizeof err, 5, bad_number));
    assert_false(parse_args(&opts, err, sizeof err, 5, negative));
    assert_false(parse_args(&opts, err, sizeof err, 5, reversed_outage));
    assert_false(parse_args(&opts, err, sizeof err, 5, bad_outage));
    assert_false(parse_args(&opts, err, sizeof err, 7, both));
    assert_false(parse_args(&opts, err, sizeof err, 4, flag_value));
    assert_false(parse_args(&opts, err, sizeof err, 5, bad_mode));
    assert_false(parse_args(&opts, err, sizeof err, 4, positional));
}

static void credential_lines_accept_both_formats(void **state)
{
    (void)state;
    char err[128];
    th_credentials_t creds;
    assert_int_equal(sim_credentials_parse_line("  TH-1 \t s3cr3t/+= \r\n", "http://h:8080", &creds,
                                                err, sizeof err),
                     SIM_LINE_DEVICE);
    assert_string_equal(creds.serial, "TH-1");
    assert_string_equal(creds.api_key, "s3cr3t/+=");
    assert_string_equal(creds.url, "http://h:8080");

    const char *uri = "thermostat://provision?v=1&url=http%3A%2F%2Fplatform%3A80&serial=TH-2&key=k";
    assert_int_equal(sim_credentials_parse_line(uri, NULL, &creds, err, sizeof err),
                     SIM_LINE_DEVICE);
    assert_string_equal(creds.url, "http://platform:80");
    assert_string_equal(creds.serial, "TH-2");
    assert_int_equal(sim_credentials_parse_line(uri, "http://127.0.0.1:9", &creds, err, sizeof err),
                     SIM_LINE_DEVICE);
    assert_string_equal(creds.url, "http://127.0.0.1:9");
    assert_string_equal(creds.api_key, "k");
}

static void credential_lines_skip_comments_and_report_errors(void **state)
{
    (void)state;
    char err[128];
    th_credentials_t creds;
    assert_int_equal(sim_credentials_parse_line("   \n", NULL, &creds, err, sizeof err),
                     SIM_LINE_SKIP);
    assert_int_equal(sim_credentials_parse_line("# TH-1 key\n", NULL, &creds, err, sizeof err),
                     SIM_LINE_SKIP);
    assert_int_equal(sim_credentials_parse_line("TH-1 key", NULL, &creds, err, sizeof err),
                     SIM_LINE_ERROR);
    assert_non_null(strstr(err, "--url"));
    assert_int_equal(sim_credentials_parse_line("TH-1", "http://h", &creds, err, sizeof err),
                     SIM_LINE_ERROR);
    assert_int_equal(sim_credentials_parse_line("TH-1 key extra", "http://h", &creds, err,
                                                sizeof err),
                     SIM_LINE_ERROR);
    assert_int_equal(sim_credentials_parse_line("thermostat://provision?v=2", NULL, &creds, err,
                                                sizeof err),
                     SIM_LINE_ERROR);
    assert_non_null(strstr(err, "version"));
}

static void credentials_file_lists_devices_and_rejects_duplicates(void **state)
{
    (void)state;
    char path[] = "/tmp/thermostat-sim-test-XXXXXX";
    char err[256];
    th_credentials_t *devices;
    size_t count;
    const int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *file = fdopen(fd, "w");
    fputs("# devices\nTH-1 key1\n\nthermostat://provision?v=1&url=http%3A%2F%2Fh&serial=TH-2"
          "&key=key2\n",
          file);
    fclose(file);
    assert_true(sim_credentials_load(path, "http://127.0.0.1:8080", &devices, &count, err,
                                     sizeof err));
    assert_int_equal(count, 2);
    assert_string_equal(devices[1].serial, "TH-2");
    free(devices);

    file = fopen(path, "a");
    fputs("TH-1 other\n", file);
    fclose(file);
    assert_false(sim_credentials_load(path, "http://127.0.0.1:8080", &devices, &count, err,
                                      sizeof err));
    assert_non_null(strstr(err, ":5: serial TH-1 is listed twice"));
    assert_null(devices);
    unlink(path);
    assert_false(sim_credentials_load(path, "http://h", &devices, &count, err, sizeof err));
}

static room_t room(double inside, double outside)
{
    return (room_t){inside, outside, 0.25, 6.0, 4.0, false};
}

static void room_model_follows_heating_cooling_and_losses(void **state)
{
    (void)state;
    room_t r = room(19.0, 0.0);
    room_advance(&r, TH_OUTPUT_HEAT_ON, 600);
    assert_true(r.inside_c > 19.0);
    r = room(19.0, 0.0);
    room_advance(&r, TH_OUTPUT_OFF, 600);
    assert_true(r.inside_c < 19.0 && r.inside_c > 0.0);
    r = room(25.0, 30.0);
    room_advance(&r, TH_OUTPUT_COOL_ON, 600);
    assert_true(r.inside_c < 25.0);
    r = room(19.0, 0.0);
    room_advance(&r, TH_OUTPUT_HEAT_ON, 1e7);
    assert_true(fabs(r.inside_c - 24.0) < 1e-6);
}

static void a_failed_heater_lets_the_room_cool_down(void **state)
{
    (void)state;
    room_t r = room(19.0, -5.0);
    r.heater_failed = true;
    double previous = r.inside_c;
    for (int i = 0; i < 30; i++) {
        room_advance(&r, TH_OUTPUT_HEAT_ON, 60);
        assert_true(r.inside_c < previous);
        previous = r.inside_c;
    }
}

int run_sim_tests(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(options_have_defaults),
        cmocka_unit_test(options_parse_every_flag),
        cmocka_unit_test(duration_sets_the_number_of_samples),
        cmocka_unit_test(options_reject_bad_usage),
        cmocka_unit_test(credential_lines_accept_both_formats),
        cmocka_unit_test(credential_lines_skip_comments_and_report_errors),
        cmocka_unit_test(credentials_file_lists_devices_and_rejects_duplicates),
        cmocka_unit_test(room_model_follows_heating_cooling_and_losses),
        cmocka_unit_test(a_failed_heater_lets_the_room_cool_down),
    };
    return cmocka_run_group_tests_name("simulator", tests, NULL, NULL);
}
