#include <stdio.h>

#include "suites.h"

int main(void)
{
    int (*const groups[])(void) = {
        run_control_tests,      run_telemetry_json_tests,  run_sample_tests,
        run_ring_buffer_tests,  run_retry_tests,           run_provisioning_tests,
        run_ingest_response_tests, run_uplink_tests,       run_ntc_tests,
        run_sim_tests,
    };
    int failed = 0;
    for (size_t i = 0; i < sizeof groups / sizeof *groups; i++) {
        failed += groups[i]();
    }
    printf("\nunit tests: %zu groups, %d failed test(s)\n", sizeof groups / sizeof *groups,
           failed);
    return failed == 0 ? 0 : 1;
}
