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

int run_ingest_response_tests(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reads_both_counts),
        cmocka_unit_test(skips_other_members_and_whitespace),
        cmocka_unit_test(rejects_incomplete_or_malformed_bodies),
        cmocka_unit_test(respects_the_given_length),
    };
    return cmocka_run_group_tests_name("ingest_response", tests, NULL, NULL);
}
