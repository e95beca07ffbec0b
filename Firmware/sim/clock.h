/* Wall and monotonic clocks for the simulator. */
#ifndef SIM_CLOCK_H
#define SIM_CLOCK_H

#include <stdint.h>

/* Monotonic milliseconds (arbitrary origin). */
uint64_t sim_clock_monotonic_ms(void);

/* Current UTC time in whole seconds since the Unix epoch. */
int64_t sim_clock_unix_s(void);

/* Sleeps for `ms` milliseconds (restarting after signals). */
void sim_clock_sleep_ms(uint64_t ms);

#endif
