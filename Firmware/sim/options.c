#include "options.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "thermostat/control.h"

#define MAX_SIMULATED_SPAN_S 315360000.0 /* ten years */
#define MAX_BATCH 500u

typedef enum { OPT_STRING, OPT_UINT, OPT_U64, OPT_DOUBLE, OPT_FLAG, OPT_OUTAGE, OPT_MODE } kind_t;

typedef struct {
    const char *name;
    kind_t kind;
    size_t offset;
} spec_t;

static const spec_t specs[] = {
    {"url", OPT_STRING, offsetof(sim_options_t, url)},
    {"credentials", OPT_STRING, offsetof(sim_options_t, credentials_path)},
    {"report", OPT_STRING, offsetof(sim_options_t, report_path)},
    {"samples", OPT_UINT, offsetof(sim_options_t, samples)},
    {"duration", OPT_UINT, offsetof(sim_options_t, duration_s)},
    {"interval", OPT_UINT, offsetof(sim_options_t, interval_s)},
    {"speed", OPT_DOUBLE, offsetof(sim_options_t, speed)},
    {"outage", OPT_OUTAGE, offsetof(sim_options_t, outage_start)},
    {"heater-failure", OPT_FLAG, offsetof(sim_options_t, heater_failure)},
    {"no-outside-sensor", OPT_FLAG, offsetof(sim_options_t, no_outside_sensor)},
    {"batch", OPT_UINT, offsetof(sim_options_t, batch)},
    {"buffer", OPT_UINT, offsetof(sim_options_t, buffer)},
    {"seed", OPT_U64, offsetof(sim_options_t, seed)},
    {"mode", OPT_MODE, offsetof(sim_options_t, mode)},
    {"setpoint", OPT_DOUBLE, offsetof(sim_options_t, setpoint_c)},
    {"outside-temp", OPT_DOUBLE, offsetof(sim_options_t, outside_c)},
    {"drain-timeout", OPT_UINT, offsetof(sim_options_t, drain_timeout_s)},
    {"help", OPT_FLAG, offsetof(sim_options_t, help)},
};

static void set_defaults(sim_options_t *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->samples = 60;
    opts->interval_s = 60;
    opts->batch = 20;
    opts->buffer = 1024;
    opts->seed = 1;
    opts->mode = TH_MODE_AUTO;
    opts->setpoint_c = 21.0;
    opts->outside_c = 5.0;
    opts->drain_timeout_s = 300;
}

static bool parse_u64(const char *text, uint64_t max, uint64_t *out)
{
    char *end;
    if (text[0] < '0' || text[0] > '9') {
        return false;
    }
    errno = 0;
    const unsigned long long value = strtoull(text, &end, 10);
    if (errno != 0 || *end != '\0' || value > max) {
        return false;
    }
    *out = value;
    return true;
}

static bool parse_double(const char *text, double *out)
{
    char *end;
    errno = 0;
    const double value = strtod(text, &end);
    if (errno != 0 || end == text || *end != '\0' || !isfinite(value)) {
        return false;
    }
    *out = value;
    return true;
}

static bool parse_outage(const char *text, sim_options_t *opts)
{
    char start[32];
    const char *colon = strchr(text, ':');
    uint64_t first, last;
    if (colon == NULL || (size_t)(colon - text) >= sizeof start) {
        return false;
    }
    memcpy(start, text, (size_t)(colon - text));
    start[colon - text] = '\0';
    if (!parse_u64(start, UINT32_MAX, &first) || !parse_u64(colon + 1, UINT32_MAX, &last) ||
        first > last) {
        return false;
    }
    opts->has_outage = true;
    opts->outage_start = (uint32_t)first;
    opts->outage_end = (uint32_t)last;
    return true;
}

static bool apply(const spec_t *spec, const char *value, sim_options_t *opts)
{
    void *field = (char *)opts + spec->offset;
    uint64_t number;
    switch (spec->kind) {
    case OPT_STRING:
        *(const char **)field = value;
        return value[0] != '\0';
    case OPT_UINT:
        if (!parse_u64(value, UINT32_MAX, &number)) {
            return false;
        }
        *(uint32_t *)field = (uint32_t)number;
        return true;
    case OPT_U64:
        return parse_u64(value, UINT64_MAX, (uint64_t *)field);
    case OPT_DOUBLE:
        return parse_double(value, (double *)field);
    case OPT_FLAG:
        *(bool *)field = true;
        return true;
    case OPT_OUTAGE:
        return parse_outage(value, opts);
    case OPT_MODE:
        return th_mode_parse(value, (th_mode_t *)field);
    }
    return false;
}

static const spec_t *find_spec(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof specs / sizeof *specs; i++) {
        if (strlen(specs[i].name) == len && memcmp(specs[i].name, name, len) == 0) {
            return &specs[i];
        }
    }
    return NULL;
}

static bool fail(char *err, size_t err_cap, const char *message, const char *detail)
{
    snprintf(err, err_cap, "%s%s", message, detail);
    return false;
}

static bool validate(sim_options_t *opts, bool samples_given, char *err, size_t err_cap)
{
    if (opts->help) {
        return true;
    }
    if (opts->credentials_path == NULL) {
        return fail(err, err_cap, "--credentials FILE is required", "");
    }
    if (opts->interval_s == 0) {
        return fail(err, err_cap, "--interval must be at least 1 second", "");
    }
    if (opts->duration_s != 0) {
        if (samples_given) {
            return fail(err, err_cap, "use either --samples or --duration, not both", "");
        }
        opts->samples = opts->duration_s / opts->interval_s;
    }
    if (opts->samples == 0) {
        return fail(err, err_cap, "at least one sample per device is needed", "");
    }
    if ((double)opts->samples * opts->interval_s > MAX_SIMULATED_SPAN_S) {
        return fail(err, err_cap, "the simulated span exceeds ten years", "");
    }
    if (opts->speed < 0.0) {
        return fail(err, err_cap, "--speed must be 0 (unpaced) or positive", "");
    }
    if (opts->batch == 0 || opts->batch > MAX_BATCH) {
        return fail(err, err_cap, "--batch must be between 1 and 500", "");
    }
    if (opts->buffer == 0) {
        return fail(err, err_cap, "--buffer must be at least 1", "");
    }
    if (opts->setpoint_c < TH_SETPOINT_MIN_C || opts->setpoint_c > TH_SETPOINT_MAX_C) {
        return fail(err, err_cap, "--setpoint must be between 5 and 35", "");
    }
    if (opts->outside_c < -40.0 || opts->outside_c > 60.0) {
        return fail(err, err_cap, "--outside-temp must be between -40 and 60", "");
    }
    return true;
}

bool sim_options_parse(int argc, char **argv, sim_options_t *opts, char *err, size_t err_cap)
{
    bool samples_given = false;
    set_defaults(opts);
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strncmp(arg, "--", 2) != 0) {
            return fail(err, err_cap, "unexpected argument: ", arg);
        }
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        const spec_t *spec = find_spec(name, eq != NULL ? (size_t)(eq - name) : strlen(name));
        if (spec == NULL) {
            return fail(err, err_cap, "unknown option: ", arg);
        }
        const char *value = eq != NULL ? eq + 1 : NULL;
        if (spec->kind == OPT_FLAG) {
            if (value != NULL) {
                return fail(err, err_cap, "option takes no value: ", arg);
            }
        } else if (value == NULL) {
            if (i + 1 >= argc) {
                return fail(err, err_cap, "missing value for ", arg);
            }
            value = argv[++i];
        }
        if (!apply(spec, value == NULL ? "" : value, opts)) {
            return fail(err, err_cap, "invalid value for ", arg);
        }
        samples_given = samples_given || spec->offset == offsetof(sim_options_t, samples);
    }
    return validate(opts, samples_given, err, err_cap);
}

void sim_options_usage(FILE *out, const char *program)
{
    fprintf(out,
            "usage: %s --credentials FILE [options]\n"
            "Simulates thermostats that post telemetry to the ThermostatRTOS platform.\n"
            "\n"
            "  --url BASE            platform base URL, e.g. http://127.0.0.1:8080\n"
            "                        (required for 'serial key' lines; overrides URI urls)\n"
            "  --credentials FILE    one device per line: 'serial key' or a\n"
            "                        thermostat://provision?... URI; '#' starts a comment\n"
            "  --samples N           samples per device (default 60)\n"
            "  --duration SECONDS    simulated time per device instead of --samples\n"
            "  --interval SECONDS    simulated seconds between samples (default 60)\n"
            "  --speed FACTOR        simulated seconds per wall second; 0 = as fast as\n"
            "                        possible (default 0). Timestamps end at the start time\n"
            "                        of the run, so they never lie in the future.\n"
            "  --outage START:END    sample indexes (0-based, inclusive) during which the\n"
            "                        network refuses to send, so samples are buffered\n"
            "  --heater-failure      heaters run but produce no heat\n"
            "  --no-outside-sensor   thermostats without an outdoor sensor: samples carry\n"
            "                        a null outside temperature (the room still loses heat\n"
            "                        to --outside-temp)\n"
            "  --batch N             max samples per upload (default 20, max 500)\n"
            "  --buffer N            offline buffer per device in samples (default 1024)\n"
            "  --mode MODE           OFF, HEAT, COOL or AUTO (default AUTO)\n"
            "  --setpoint C          setpoint in Celsius (default 21)\n"
            "  --outside-temp C      outside temperature in Celsius (default 5)\n"
            "  --seed N              seed for room variation and retry jitter (default 1)\n"
            "  --drain-timeout S     wall seconds to keep retrying after the last sample\n"
            "                        (default 300)\n"
            "  --report FILE         write a JSON summary per device\n"
            "  --help                show this text\n"
            "\n"
            "Exit status: 0 every sample delivered, 1 samples undelivered (dropped,\n"
            "rejected or still buffered), 2 usage or credentials error, 3 a device's key\n"
            "was revoked (needs re-provisioning).\n",
            program);
}
