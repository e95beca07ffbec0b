#include <stdio.h>
#include <string.h>

#include "suites.h"
#include "thermostat/provisioning.h"

static th_prov_status_t parse(const char *payload, th_credentials_t *creds)
{
    return th_provision_parse(payload, strlen(payload), creds);
}

static void parses_a_complete_payload(void **state)
{
    (void)state;
    th_credentials_t creds;
    assert_int_equal(parse("thermostat://provision?v=1&url=https%3A%2F%2Fthermo.example.com%3A8443"
                           "%2Fbase&serial=TH-0001&key=abc%2B%2f%3D+x",
                           &creds),
                     TH_PROV_OK);
    assert_string_equal(creds.url, "https://thermo.example.com:8443/base");
    assert_string_equal(creds.serial, "TH-0001");
    assert_string_equal(creds.api_key, "abc+/=+x");
}

static void accepts_any_order_unknown_parameters_and_case_insensitive_scheme(void **state)
{
    (void)state;
    th_credentials_t creds;
    assert_int_equal(parse("THERMOSTAT://Provision?key=k1&label=Kitchen%20wall&serial=s.1_a"
                           "&url=http://127.0.0.1:8080&v=1",
                           &creds),
                     TH_PROV_OK);
    assert_string_equal(creds.url, "http://127.0.0.1:8080");
    assert_string_equal(creds.serial, "s.1_a");
    assert_string_equal(creds.api_key, "k1");
}

static void rejects_wrong_schemes(void **state)
{
    (void)state;
    th_credentials_t creds;
    const char *bad[] = {"http://provision?v=1&url=http://h&serial=s&key=k",
                         "thermostat://provisioning?v=1&url=http://h&serial=s&key=k",
                         "thermostat:/provision?v=1&url=http://h&serial=s&key=k",
                         "thermostat://provision", ""};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(parse(bad[i], &creds), TH_PROV_ERR_SCHEME);
    }
}

static void rejects_other_versions(void **state)
{
    (void)state;
    th_credentials_t creds;
    assert_int_equal(parse("thermostat://provision?v=2&url=http://h&serial=s&key=k", &creds),
                     TH_PROV_ERR_VERSION);
    assert_int_equal(parse("thermostat://provision?v=01&url=http://h&serial=s&key=k", &creds),
                     TH_PROV_ERR_VERSION);
    assert_int_equal(parse("thermostat://provision?v=1111111111&url=http://h&serial=s&key=k",
                           &creds),
                     TH_PROV_ERR_VERSION);
    assert_int_equal(parse("thermostat://provision?v=2", &creds), TH_PROV_ERR_VERSION);
}

static void rejects_missing_and_duplicate_fields(void **state)
{
    (void)state;
    th_credentials_t creds;
    assert_int_equal(parse("thermostat://provision?url=http://h&serial=s&key=k", &creds),
                     TH_PROV_ERR_MISSING);
    assert_int_equal(parse("thermostat://provision?v=1&url=http://h&serial=s", &creds),
                     TH_PROV_ERR_MISSING);
    assert_int_equal(parse("thermostat://provision?", &creds), TH_PROV_ERR_MISSING);
    assert_int_equal(parse("thermostat://provision?v=1&url=http://h&serial=s&serial=t&key=k",
                           &creds),
                     TH_PROV_ERR_DUPLICATE);
    assert_int_equal(parse("thermostat://provision?v=1&v=1&url=http://h&serial=s&key=k", &creds),
                     TH_PROV_ERR_DUPLICATE);
}

static void rejects_malformed_parameter_lists(void **state)
{
    (void)state;
    th_credentials_t creds;
    const char *bad[] = {
        "thermostat://provision?v=1&&url=http://h&serial=s&key=k",
        "thermostat://provision?v=1&url=http://h&serial=s&key=k&",
        "thermostat://provision?v=1&url=http://h&serial&key=k",
        "thermostat://provision?v=1&url=http://h&=s&serial=s&key=k",
        "thermostat://provision?v=1&url=http://h&serial=s&key=k#frag",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(parse(bad[i], &creds), TH_PROV_ERR_SYNTAX);
    }
    const char with_nul[] = "thermostat://provision?v=1&url=http://h&serial=s\0x&key=k";
    assert_int_equal(th_provision_parse(with_nul, sizeof with_nul - 1, &creds), TH_PROV_ERR_SYNTAX);
}

static void rejects_bad_percent_encoding(void **state)
{
    (void)state;
    th_credentials_t creds;
    const char *bad[] = {
        "thermostat://provision?v=1&url=http://h&serial=s&key=%G1",
        "thermostat://provision?v=1&url=http://h&serial=s&key=%4",
        "thermostat://provision?v=1&url=http://h&serial=s&key=k%",
        "thermostat://provision?v=1&url=http://h&serial=s&key=k%00",
        "thermostat://provision?v=1&url=http://h&serial=s&key=k%0A",
        "thermostat://provision?v=1&url=http://h&serial=s&key=a b",
        "thermostat://provision?v=1&url=http://h&serial=s&key=caf\xc3\xa9",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(parse(bad[i], &creds), TH_PROV_ERR_ENCODING);
    }
}

static void rejects_overlong_values(void **state)
{
    (void)state;
    th_credentials_t creds;
    char payload[2048];
    char long_value[TH_PROVISIONING_MAX + 1];

    memset(long_value, 'a', TH_SERIAL_MAX + 1);
    long_value[TH_SERIAL_MAX + 1] = '\0';
    snprintf(payload, sizeof payload, "thermostat://provision?v=1&url=http://h&serial=%s&key=k",
             long_value);
    assert_int_equal(parse(payload, &creds), TH_PROV_ERR_TOO_LONG);

    memset(long_value, 'k', TH_API_KEY_MAX + 1);
    long_value[TH_API_KEY_MAX + 1] = '\0';
    snprintf(payload, sizeof payload, "thermostat://provision?v=1&url=http://h&serial=s&key=%s",
             long_value);
    assert_int_equal(parse(payload, &creds), TH_PROV_ERR_TOO_LONG);

    memset(long_value, 'h', TH_URL_MAX);
    long_value[TH_URL_MAX] = '\0';
    snprintf(payload, sizeof payload, "thermostat://provision?v=1&url=http://%s&serial=s&key=k",
             long_value);
    assert_int_equal(parse(payload, &creds), TH_PROV_ERR_TOO_LONG);

    memset(long_value, 'x', sizeof long_value - 1);
    long_value[sizeof long_value - 1] = '\0';
    snprintf(payload, sizeof payload, "thermostat://provision?v=1&url=http://h&serial=s&key=k&x=%s",
             long_value);
    assert_int_equal(parse(payload, &creds), TH_PROV_ERR_TOO_LONG);
}

static void accepts_values_at_their_limits(void **state)
{
    (void)state;
    th_credentials_t creds;
    char payload[1024];
    char serial[TH_SERIAL_MAX + 1];
    char key[TH_API_KEY_MAX + 1];
    memset(serial, 'S', TH_SERIAL_MAX);
    serial[TH_SERIAL_MAX] = '\0';
    memset(key, 'K', TH_API_KEY_MAX);
    key[TH_API_KEY_MAX] = '\0';
    snprintf(payload, sizeof payload, "thermostat://provision?v=1&url=http://h&serial=%s&key=%s",
             serial, key);
    assert_int_equal(parse(payload, &creds), TH_PROV_OK);
    assert_string_equal(creds.serial, serial);
    assert_string_equal(creds.api_key, key);
}

static void rejects_unusable_values_and_leaves_credentials_untouched(void **state)
{
    (void)state;
    th_credentials_t creds;
    memset(&creds, 'z', sizeof creds);
    const char *bad[] = {
        "thermostat://provision?v=1&url=ftp://h&serial=s&key=k",
        "thermostat://provision?v=1&url=https://&serial=s&key=k",
        "thermostat://provision?v=1&url=http://h?x=1&serial=s&key=k",
        "thermostat://provision?v=1&url=http://h&serial=a%3Ab&key=k",
        "thermostat://provision?v=1&url=http://h&serial=s&key=",
        "thermostat://provision?v=1&url=&serial=s&key=k",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(parse(bad[i], &creds), TH_PROV_ERR_VALUE);
    }
    assert_int_equal(creds.serial[0], 'z');
}

static void every_status_has_a_message(void **state)
{
    (void)state;
    for (int s = TH_PROV_OK; s <= TH_PROV_ERR_VALUE; s++) {
        assert_true(strlen(th_prov_status_message((th_prov_status_t)s)) > 0);
    }
}

int run_provisioning_tests(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parses_a_complete_payload),
        cmocka_unit_test(accepts_any_order_unknown_parameters_and_case_insensitive_scheme),
        cmocka_unit_test(rejects_wrong_schemes),
        cmocka_unit_test(rejects_other_versions),
        cmocka_unit_test(rejects_missing_and_duplicate_fields),
        cmocka_unit_test(rejects_malformed_parameter_lists),
        cmocka_unit_test(rejects_bad_percent_encoding),
        cmocka_unit_test(rejects_overlong_values),
        cmocka_unit_test(accepts_values_at_their_limits),
        cmocka_unit_test(rejects_unusable_values_and_leaves_credentials_untouched),
        cmocka_unit_test(every_status_has_a_message),
    };
    return cmocka_run_group_tests_name("provisioning", tests, NULL, NULL);
}
