#include "report.h"

#include <inttypes.h>

#include "thermostat/telemetry_json.h"
#include "thermostat/timestamp.h"

const char *sim_report_state(const sim_device_t *dev)
{
    if (sim_device_needs_reprovisioning(dev)) {
        return "needs_reprovisioning";
    }
    return sim_device_delivered_all(dev) ? "ok" : "undelivered";
}

int sim_report_exit_code(const sim_device_t *devices, size_t count)
{
    int code = SIM_EXIT_OK;
    for (size_t i = 0; i < count; i++) {
        if (sim_device_needs_reprovisioning(&devices[i])) {
            return SIM_EXIT_NEEDS_REPROVISIONING;
        }
        if (!sim_device_delivered_all(&devices[i])) {
            code = SIM_EXIT_UNDELIVERED;
        }
    }
    return code;
}

static void write_device(FILE *out, const sim_device_t *dev)
{
    const th_uplink_stats_t *stats = &dev->uplink.stats;
    char serial[2 * TH_SERIAL_MAX + 3];
    char first[TH_TIMESTAMP_LEN + 1], last[TH_TIMESTAMP_LEN + 1];
    size_t len;
    th_json_quote(dev->credentials.serial, serial, sizeof serial, &len);
    th_timestamp_format(dev->first_timestamp, first, sizeof first);
    th_timestamp_format(dev->last_timestamp, last, sizeof last);
    fprintf(out,
            "{\"serial\":%s,\"generated\":%" PRIu64 ",\"sent\":%" PRIu64
            ",\"acknowledged\":%" PRIu64 ",\"accepted\":%" PRIu64 ",\"duplicates\":%" PRIu64
            ",\"dropped\":%" PRIu64 ",\"rejected\":%" PRIu64 ",\"pending\":%zu"
            ",\"requests\":%" PRIu64 ",\"failed_requests\":%" PRIu64 ",\"rate_limited\":%" PRIu64
            ",\"held\":%" PRIu64
            ",\"first_timestamp\":\"%s\",\"last_timestamp\":\"%s\",\"state\":\"%s\"}",
            serial, dev->generated, stats->sent, stats->acknowledged, stats->accepted,
            stats->duplicates, th_ring_dropped(&dev->ring), stats->rejected,
            th_ring_count(&dev->ring), stats->requests, stats->failed_requests,
            stats->rate_limited, stats->held, first, last, sim_report_state(dev));
}

bool sim_report_write_json(FILE *out, const sim_device_t *devices, size_t count)
{
    fputs("{\"devices\":[", out);
    for (size_t i = 0; i < count; i++) {
        if (i > 0) {
            fputs(",", out);
        }
        fputs("\n  ", out);
        write_device(out, &devices[i]);
    }
    fprintf(out, "\n],\"exit_code\":%d}\n", sim_report_exit_code(devices, count));
    return !ferror(out);
}

void sim_report_print(FILE *out, const sim_device_t *devices, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        const sim_device_t *dev = &devices[i];
        fprintf(out,
                "%s: generated %" PRIu64 ", acknowledged %" PRIu64 " (%" PRIu64
                " duplicates), dropped %" PRIu64 ", rejected %" PRIu64 ", pending %zu, "
                "requests %" PRIu64 " (%" PRIu64 " retried, %" PRIu64 " rate limited, %" PRIu64
                " held): %s\n",
                dev->credentials.serial, dev->generated, dev->uplink.stats.acknowledged,
                dev->uplink.stats.duplicates, th_ring_dropped(&dev->ring),
                dev->uplink.stats.rejected, th_ring_count(&dev->ring), dev->uplink.stats.requests,
                dev->uplink.stats.failed_requests, dev->uplink.stats.rate_limited,
                dev->uplink.stats.held, sim_report_state(dev));
    }
}
