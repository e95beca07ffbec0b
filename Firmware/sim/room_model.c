#include "room_model.h"

#include <math.h>

void room_advance(room_t *room, th_output_t output, double seconds)
{
    double drive = 0.0;
    if (output == TH_OUTPUT_HEAT_ON && !room->heater_failed) {
        drive = room->heat_c_per_hour;
    } else if (output == TH_OUTPUT_COOL_ON) {
        drive = -room->cool_c_per_hour;
    }
    const double hours = seconds / 3600.0;
    if (room->loss_per_hour <= 0.0) {
        room->inside_c += drive * hours;
        return;
    }
    const double equilibrium = room->outside_c + drive / room->loss_per_hour;
    room->inside_c = equilibrium + (room->inside_c - equilibrium) * exp(-room->loss_per_hour * hours);
}
