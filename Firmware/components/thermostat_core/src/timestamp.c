#include "thermostat/timestamp.h"

/* Last second of 9999-12-31. */
#define MAX_UNIX_S INT64_C(253402300799)

static void put_digits(char *out, unsigned value, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        out[i] = (char)('0' + value % 10);
        value /= 10;
    }
}

/* Civil date from days since 1970-01-01 (Howard Hinnant's algorithm, non-negative days only). */
static void civil_from_days(int64_t days, unsigned *year, unsigned *month, unsigned *day)
{
    const int64_t z = days + 719468;
    const int64_t era = z / 146097;
    const unsigned doe = (unsigned)(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    *day = doy - (153 * mp + 2) / 5 + 1;
    *month = mp < 10 ? mp + 3 : mp - 9;
    *year = (unsigned)(yoe + era * 400) + (*month <= 2 ? 1u : 0u);
}

th_status_t th_timestamp_format(int64_t unix_s, char *buf, size_t cap)
{
    if (unix_s < 0 || unix_s > MAX_UNIX_S) {
        return TH_ERR_INVALID;
    }
    if (cap < TH_TIMESTAMP_LEN + 1) {
        return TH_ERR_NO_SPACE;
    }
    unsigned year, month, day;
    civil_from_days(unix_s / 86400, &year, &month, &day);
    const unsigned secs = (unsigned)(unix_s % 86400);

    put_digits(buf, year, 4);
    buf[4] = '-';
    put_digits(buf + 5, month, 2);
    buf[7] = '-';
    put_digits(buf + 8, day, 2);
    buf[10] = 'T';
    put_digits(buf + 11, secs / 3600, 2);
    buf[13] = ':';
    put_digits(buf + 14, secs / 60 % 60, 2);
    buf[16] = ':';
    put_digits(buf + 17, secs % 60, 2);
    buf[19] = 'Z';
    buf[20] = '\0';
    return TH_OK;
}
