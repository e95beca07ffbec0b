#include <string.h>

#include "suites.h"
#include "thermostat/ingest_response.h"

static th_status_t parse(const char *body, uint32_t *accepted, uint32_t *duplicates)
{
    return th_ingest_response_parse(body, strlen(body), accepted, duplicates);
}

static void reads_both_counts(void **state)
{
    (void)state;
    uint32_t accepted = 0, duplicates = 0;
    assert_int_equal(parse("{\"accepted\":3,\"duplicates\":1}", &accepted, &duplicates), TH_OK);
    assert_int_equal(accepted, 3);
    assert_int_equal(duplicates, 1);
}

static void skips_other_members_and_whitespace(void **state)
{
    (void)state;
    uint32_t accepted = 0, duplicates = 0;
    assert_int_equal(parse(" {\n \"note\": \"a \\\"quoted\\\" } text\", \"duplicates\" : 0,"
                           " \"ids\": [1, {\"x\": [true, null]}, -2.5e3], \"accepted\": 4294967295"
                           " }\r\n",
                           &accepted, &duplicates),
                     TH_OK);
    assert_int_equal(accepted, UINT32_MAX);
    assert_int_equal(duplicates, 0);
}

static void rejects_incomplete_or_malformed_bodies(void **state)
{
    (void)state;
    uint32_t accepted, duplicates;
    const char *bad[] = {
        "",
        "{}",
        "{\"accepted\":3}",
        "{\"accepted\":-1,\"duplicates\":0}",
        "{\"accepted\":1.5,\"duplicates\":0}",
        "{\"accepted\":4294967296,\"duplicates\":0}",
        "{\"accepted\":\"3\",\"duplicates\":0}",
        "{\"accepted\":3,\"duplicates\":0",
        "{\"accepted\":3,\"duplicates\":0} trailing",
        "[{\"accepted\":3,\"duplicates\":0}]",
        "{\"accepted\":3,,\"duplicates\":0}",
        "<html>Bad Gateway</html>",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(parse(bad[i], &accepted, &duplicates), TH_ERR_INVALID);
    }
}

static void respects_the_given_length(void **state)
{
    (void)state;
    uint32_t accepted, duplicates;
    const char *body = "{\"accepted\":1,\"duplicates\":2}garbage";
    assert_int_equal(th_ingest_response_parse(body, strlen(body) - strlen("garbage"), &accepted,
                                              &duplicates),
                     TH_OK);
    assert_int_equal(duplicates, 2);
}

static void reads_the_code_of_an_error_body(void **state)
{
    (void)state;
    char code[TH_ERROR_CODE_MAX + 1];
    const char *body = "{\"error\":{\"code\":\"quota_exceeded\",\"message\":\"Over quota\"}}";
    assert_int_equal(th_error_code_parse(body, strlen(body), code), TH_OK);
    assert_string_equal(code, "quota_exceeded");

    body = " {\"note\":[1,{\"a\":\"}\"}],\n \"error\" : {\"field\":null,\"message\":\"An "
           "admin \\\"disabled\\\" it\",\"code\" : \"tenant_disabled\"}}";
    assert_int_equal(th_error_code_parse(body, strlen(body), code), TH_OK);
    assert_string_equal(code, "tenant_disabled");
}

static void reads_the_code_of_a_body_cut_short(void **state)
{
    (void)state;
    char code[TH_ERROR_CODE_MAX + 1];
    const char *body = "{\"error\":{\"code\":\"quota_exceeded\",\"message\":\"The tenant ha";
    assert_int_equal(th_error_code_parse(body, strlen(body), code), TH_OK);
    assert_string_equal(code, "quota_exceeded");
    body = "{\"error\":{\"code\":\"quota_exceeded\"";
    assert_int_equal(th_error_code_parse(body, strlen(body), code), TH_OK);
    /* Cut inside the code: "quota_exc" must not pass for anything. */
    body = "{\"error\":{\"code\":\"quota_exceeded\"";
    assert_int_equal(th_error_code_parse(body, strlen(body) - 6, code), TH_ERR_INVALID);
    assert_string_equal(code, "");
}

static void rejects_bodies_without_a_usable_code(void **state)
{
    (void)state;
    char code[TH_ERROR_CODE_MAX + 1];
    const char *bad[] = {
        "",
        "Forbidden",
        "<html>403 Forbidden</html>",
        "{}",
        "{\"accepted\":1,\"duplicates\":0}",
        "{\"code\":\"quota_exceeded\"}",
        "{\"error\":\"quota_exceeded\"}",
        "{\"error\":{\"message\":\"no code\"}}",
        "{\"error\":{\"code\":\"\"}}",
        "{\"error\":{\"code\":42}}",
        "{\"error\":{\"code\":\"quota\\u005fexceeded\"}}",
        "{\"error\":{\"code\":\"a_code_that_is_longer_than_31_bytes\"}}",
        "{\"error\":{\"message\":\"The tenant has used up its",
        "[{\"error\":{\"code\":\"quota_exceeded\"}}]",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        strcpy(code, "stale");
        assert_int_equal(th_error_code_parse(bad[i], strlen(bad[i]), code), TH_ERR_INVALID);
        assert_string_equal(code, "");
    }
}

int run_ingest_response_tests(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reads_both_counts),
        cmocka_unit_test(skips_other_members_and_whitespace),
        cmocka_unit_test(rejects_incomplete_or_malformed_bodies),
        cmocka_unit_test(respects_the_given_length),
        cmocka_unit_test(reads_the_code_of_an_error_body),
        cmocka_unit_test(reads_the_code_of_a_body_cut_short),
        cmocka_unit_test(rejects_bodies_without_a_usable_code),
    };
    return cmocka_run_group_tests_name("ingest_response", tests, NULL, NULL);
}
