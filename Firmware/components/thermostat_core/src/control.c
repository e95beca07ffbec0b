#include "thermostat/control.h"

#include <math.h>

void th_control_default_config(th_control_config_t *cfg)
{
    cfg->mode = TH_MODE_AUTO;
    cfg->setpoint_c = 21.0;
    cfg->hysteresis_c = 1.0;
    cfg->min_on_s = 180;
    cfg->min_off_s = 300;
    cfg->sensor_min_c = -40.0;
    cfg->sensor_max_c = 85.0;
}

void th_control_init(th_control_t *ctl, int64_t now_s)
{
    ctl->output = TH_OUTPUT_OFF;
    ctl->last_switch_s = now_s;
    ctl->fault = TH_FAULT_NONE;
}

bool th_reading_plausible(const th_control_config_t *cfg, th_reading_t reading)
{
    return reading.valid && isfinite(reading.celsius) && reading.celsius >= cfg->sensor_min_c &&
           reading.celsius <= cfg->sensor_max_c;
}

static bool config_valid(const th_control_config_t *cfg)
{
    return (unsigned)cfg->mode <= TH_MODE_AUTO && isfinite(cfg->setpoint_c) &&
           isfinite(cfg->hysteresis_c) && cfg->hysteresis_c >= 0.0;
}

static bool output_allowed(th_mode_t mode, th_output_t output)
{
    switch (output) {
    case TH_OUTPUT_HEAT_ON:
        return mode == TH_MODE_HEAT || mode == TH_MODE_AUTO;
    case TH_OUTPUT_COOL_ON:
        return mode == TH_MODE_COOL || mode == TH_MODE_AUTO;
    default:
        return true;
    }
}

static th_output_t desired_output(const th_control_config_t *cfg, th_output_t current, double t)
{
    const double lower = cfg->setpoint_c - cfg->hysteresis_c / 2.0;
    const double upper = cfg->setpoint_c + cfg->hysteresis_c / 2.0;
    switch (cfg->mode) {
    case TH_MODE_HEAT:
        if (current == TH_OUTPUT_HEAT_ON) {
            return t >= upper ? TH_OUTPUT_OFF : TH_OUTPUT_HEAT_ON;
        }
        return t <= lower ? TH_OUTPUT_HEAT_ON : TH_OUTPUT_OFF;
    case TH_MODE_COOL:
        if (current == TH_OUTPUT_COOL_ON) {
            return t <= lower ? TH_OUTPUT_OFF : TH_OUTPUT_COOL_ON;
        }
        return t >= upper ? TH_OUTPUT_COOL_ON : TH_OUTPUT_OFF;
    case TH_MODE_AUTO:
        if (current == TH_OUTPUT_HEAT_ON) {
            return t >= cfg->setpoint_c ? TH_OUTPUT_OFF : TH_OUTPUT_HEAT_ON;
        }
        if (current == TH_OUTPUT_COOL_ON) {
            return t <= cfg->setpoint_c ? TH_OUTPUT_OFF : TH_OUTPUT_COOL_ON;
        }
        if (t <= lower) {
            return TH_OUTPUT_HEAT_ON;
        }
        return t >= upper ? TH_OUTPUT_COOL_ON : TH_OUTPUT_OFF;
    default:
        return TH_OUTPUT_OFF;
    }
}

static void switch_to(th_control_t *ctl, th_output_t output, int64_t now_s)
{
    if (ctl->output != output) {
        ctl->output = output;
        ctl->last_switch_s = now_s;
    }
}

th_output_t th_control_step(th_control_t *ctl, const th_control_config_t *cfg, th_reading_t inside,
                            int64_t now_s)
{
    if (!config_valid(cfg)) {
        ctl->fault = TH_FAULT_CONFIG;
    } else if (!th_reading_plausible(cfg, inside)) {
        ctl->fault = TH_FAULT_SENSOR;
    } else {
        ctl->fault = TH_FAULT_NONE;
    }
    if (ctl->fault != TH_FAULT_NONE || !output_allowed(cfg->mode, ctl->output)) {
        switch_to(ctl, TH_OUTPUT_OFF, now_s);
        return ctl->output;
    }

    const th_output_t wanted = desired_output(cfg, ctl->output, inside.celsius);
    const int64_t elapsed = now_s - ctl->last_switch_s;
    if (wanted == ctl->output) {
        return ctl->output;
    }
    if (ctl->output != TH_OUTPUT_OFF) {
        if (elapsed >= (int64_t)cfg->min_on_s) {
            switch_to(ctl, TH_OUTPUT_OFF, now_s);
        }
    } else if (elapsed >= (int64_t)cfg->min_off_s) {
        switch_to(ctl, wanted, now_s);
    }
    return ctl->output;
}

double th_setpoint_adjust(double setpoint_c, double delta_c)
{
    const double next = setpoint_c + delta_c;
    if (!(next >= TH_SETPOINT_MIN_C)) {
        return TH_SETPOINT_MIN_C;
    }
    return next > TH_SETPOINT_MAX_C ? TH_SETPOINT_MAX_C : next;
}
