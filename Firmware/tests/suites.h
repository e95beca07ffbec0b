/* Test groups of the host unit-test binary; each returns its number of failed tests. */
#ifndef TESTS_SUITES_H
#define TESTS_SUITES_H

/* The cmocka headers need these included first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

int run_control_tests(void);
int run_telemetry_json_tests(void);
int run_sample_tests(void);
int run_ring_buffer_tests(void);
int run_retry_tests(void);
int run_provisioning_tests(void);
int run_ingest_response_tests(void);
int run_uplink_tests(void);
int run_ntc_tests(void);
int run_sim_tests(void);

#endif
