/* Result codes shared by the portable thermostat core. */
#ifndef THERMOSTAT_STATUS_H
#define THERMOSTAT_STATUS_H

typedef enum {
    TH_OK = 0,
    TH_ERR_NO_SPACE, /* the caller-supplied buffer is too small */
    TH_ERR_INVALID   /* the input cannot be represented or is malformed */
} th_status_t;

#endif
