#include "thermostat/modes.h"

#include <string.h>

static const char *const mode_names[] = {"OFF", "HEAT", "COOL", "AUTO"};
static const char *const output_names[] = {"OFF", "HEAT_ON", "COOL_ON"};

const char *th_mode_name(th_mode_t mode)
{
    return (unsigned)mode <= TH_MODE_AUTO ? mode_names[mode] : "OFF";
}

bool th_mode_parse(const char *name, th_mode_t *mode)
{
    for (unsigned i = 0; i <= TH_MODE_AUTO; i++) {
        if (strcmp(name, mode_names[i]) == 0) {
            *mode = (th_mode_t)i;
            return true;
        }
    }
    return false;
}

th_mode_t th_mode_next(th_mode_t mode)
{
    return mode >= TH_MODE_AUTO ? TH_MODE_OFF : (th_mode_t)(mode + 1);
}

const char *th_output_name(th_output_t output)
{
    return (unsigned)output <= TH_OUTPUT_COOL_ON ? output_names[output] : "OFF";
}
