/* FreeRTOS task entry points; each takes the shared app_state_t as its argument. */
#ifndef TASKS_H
#define TASKS_H

/* Reads both NTC sensors once a second. */
void sensor_task(void *app);

/* Runs the control law once a second and drives the relays. */
void control_task(void *app);

/* Debounces the buttons (setpoint up/down, mode) and refreshes the status display. */
void ui_task(void *app);

/* Provisioning, Wi-Fi station and SNTP; waits for a new payload after a revocation. */
void network_task(void *app);

/* Takes a sample every interval and uploads the buffer while the network is up. */
void telemetry_task(void *app);

#endif
