/*
 * thermostat-sim: N simulated thermostats posting telemetry to the platform.
 *
 * Sample k of every device is stamped start + k * interval, where start is
 * chosen so the last sample carries the wall-clock time at which the run
 * began: timestamps always lie in the past, however fast the run goes.
 */
#include <stdio.h>
#include <stdlib.h>

#include <curl/curl.h>

#include "clock.h"
#include "credentials_file.h"
#include "options.h"
#include "report.h"
#include "sim_device.h"

#define MIN_SLEEP_MS 10u
#define MAX_SLEEP_MS 250u

typedef struct {
    sim_device_t *devices;
    size_t count;
    bool outage;
} fleet_t;

static bool all_finished(const fleet_t *fleet)
{
    for (size_t i = 0; i < fleet->count; i++) {
        if (!sim_device_finished(&fleet->devices[i])) {
            return false;
        }
    }
    return true;
}

static bool all_revoked(const fleet_t *fleet)
{
    for (size_t i = 0; i < fleet->count; i++) {
        if (!sim_device_needs_reprovisioning(&fleet->devices[i])) {
            return false;
        }
    }
    return true;
}

static void set_outage(fleet_t *fleet, bool outage)
{
    if (fleet->outage && !outage) {
        const uint64_t now = sim_clock_monotonic_ms();
        for (size_t i = 0; i < fleet->count; i++) {
            th_uplink_network_up(&fleet->devices[i].uplink, now);
        }
    }
    fleet->outage = outage;
}

/* Lets every device upload until `deadline_ms` (or, with `until_finished`, until all are done). */
static void service(fleet_t *fleet, uint64_t deadline_ms, bool until_finished)
{
    for (;;) {
        for (size_t i = 0; i < fleet->count; i++) {
            sim_device_service(&fleet->devices[i], sim_clock_monotonic_ms());
        }
        const uint64_t now = sim_clock_monotonic_ms();
        if (now >= deadline_ms || (until_finished && all_finished(fleet))) {
            return;
        }
        uint64_t wake = deadline_ms;
        for (size_t i = 0; i < fleet->count; i++) {
            const sim_device_t *dev = &fleet->devices[i];
            const uint64_t next = th_uplink_next_attempt_ms(&dev->uplink);
            if (!sim_device_finished(dev) && next < wake) {
                wake = next;
            }
        }
        uint64_t nap = wake > now ? wake - now : 0;
        nap = nap < MIN_SLEEP_MS ? MIN_SLEEP_MS : nap > MAX_SLEEP_MS ? MAX_SLEEP_MS : nap;
        sim_clock_sleep_ms(nap);
    }
}

static void run(fleet_t *fleet, const sim_options_t *opts, int64_t start_s)
{
    const uint64_t wall_start = sim_clock_monotonic_ms();
    for (uint32_t k = 0; k < opts->samples && !all_revoked(fleet); k++) {
        set_outage(fleet, opts->has_outage && k >= opts->outage_start && k <= opts->outage_end);
        for (size_t i = 0; i < fleet->count; i++) {
            sim_device_record(&fleet->devices[i], start_s + (int64_t)k * opts->interval_s);
        }
        uint64_t deadline = 0;
        if (opts->speed > 0.0) {
            deadline = wall_start + (uint64_t)((double)(k + 1) * opts->interval_s * 1000.0 /
                                               opts->speed);
        }
        service(fleet, deadline, false);
    }
    set_outage(fleet, false);
    service(fleet, sim_clock_monotonic_ms() + (uint64_t)opts->drain_timeout_s * 1000u, true);
}

static bool write_report(const char *path, const fleet_t *fleet)
{
    FILE *out = fopen(path, "w");
    if (out == NULL) {
        return false;
    }
    const bool written = sim_report_write_json(out, fleet->devices, fleet->count);
    return fclose(out) == 0 && written;
}

static int simulate(const sim_options_t *opts, const th_credentials_t *creds, size_t count)
{
    const int64_t start_s =
        sim_clock_unix_s() - (int64_t)(opts->samples - 1) * (int64_t)opts->interval_s;
    fleet_t fleet = {calloc(count, sizeof(sim_device_t)), 0, false};
    int code = SIM_EXIT_USAGE;
    if (fleet.devices == NULL) {
        fprintf(stderr, "thermostat-sim: out of memory\n");
        return code;
    }
    bool ready = true;
    while (ready && fleet.count < count) {
        const size_t index = fleet.count++;
        ready = sim_device_init(&fleet.devices[index], &creds[index], opts, (unsigned)index,
                                start_s, &fleet.outage);
    }
    if (ready) {
        run(&fleet, opts, start_s);
        sim_report_print(stdout, fleet.devices, fleet.count);
        code = sim_report_exit_code(fleet.devices, fleet.count);
        if (opts->report_path != NULL && !write_report(opts->report_path, &fleet)) {
            fprintf(stderr, "thermostat-sim: cannot write %s\n", opts->report_path);
            code = SIM_EXIT_USAGE;
        }
    } else {
        fprintf(stderr, "thermostat-sim: cannot set up device %s\n", creds[fleet.count - 1].serial);
    }
    for (size_t i = 0; i < fleet.count; i++) {
        sim_device_free(&fleet.devices[i]);
    }
    free(fleet.devices);
    return code;
}

int main(int argc, char **argv)
{
    sim_options_t opts;
    char err[512];
    th_credentials_t *creds;
    size_t count;

    if (!sim_options_parse(argc, argv, &opts, err, sizeof err)) {
        fprintf(stderr, "thermostat-sim: %s\n\n", err);
        sim_options_usage(stderr, argv[0]);
        return SIM_EXIT_USAGE;
    }
    if (opts.help) {
        sim_options_usage(stdout, argv[0]);
        return SIM_EXIT_OK;
    }
    if (!sim_credentials_load(opts.credentials_path, opts.url, &creds, &count, err, sizeof err)) {
        fprintf(stderr, "thermostat-sim: %s\n", err);
        return SIM_EXIT_USAGE;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "thermostat-sim: libcurl initialisation failed\n");
        free(creds);
        return SIM_EXIT_USAGE;
    }
    const int code = simulate(&opts, creds, count);
    curl_global_cleanup();
    free(creds);
    return code;
}
