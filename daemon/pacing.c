#include "pacing.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

#define DAY_S 86400

int pacing_calendar_check(const pacing_calendar_t *cal, char *err, size_t errlen)
{
    if (!cal->zone)
        return log_errbuf(err, errlen, "calendar: no time zone");
    if (cal->start_min < 0 || cal->end_min > 1440 || cal->start_min >= cal->end_min)
        return log_errbuf(err, errlen, "calendar: working hours must run from 00:00 to 24:00 "
                                       "at most, start before end");
    if (cal->work_days & ~0xfeu)
        return log_errbuf(err, errlen, "calendar: unknown weekday bit");
    for (size_t i = 1; i < cal->n_holidays; i++)
        if (cal->holidays[i] <= cal->holidays[i - 1])
            return log_errbuf(err, errlen, "calendar: holidays must be ascending and distinct");
    return 0;
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* The local date of an instant, as days since 1970-01-01. */
static int64_t local_day(period_zone_t *zone, int64_t ms)
{
    return floor_div(floor_div(ms, 1000) + period_utc_offset_s(zone, ms), DAY_S);
}

static bool is_holiday(const pacing_calendar_t *cal, int64_t day)
{
    size_t lo = 0, hi = cal->n_holidays;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cal->holidays[mid] < day)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < cal->n_holidays && cal->holidays[lo] == day;
}

static bool is_working_day(const pacing_calendar_t *cal, int64_t day, int *y, int *m, int *d)
{
    period_civil_from_days(day, y, m, d);
    return (cal->work_days & (1u << period_weekday(*y, *m, *d))) && !is_holiday(cal, day);
}

/* The UTC instant of local minute `minute` (0..1440) of a date. */
static int64_t local_minute(period_zone_t *zone, int64_t day, int minute)
{
    int y, m, d;
    if (minute == 1440) {
        day++;
        minute = 0;
    }
    period_civil_from_days(day, &y, &m, &d);
    return period_local_to_utc(zone, y, m, d, minute / 60, minute % 60);
}

int64_t pacing_work_s(const pacing_calendar_t *cal, int64_t from_ms, int64_t to_ms)
{
    if (to_ms <= from_ms)
        return 0;
    int64_t total_ms = 0;
    /* A working day's hours lie within its local date, so only these dates can overlap. */
    int64_t first = local_day(cal->zone, from_ms), last = local_day(cal->zone, to_ms - 1);
    for (int64_t day = first; day <= last; day++) {
        int y, m, d;
        if (!is_working_day(cal, day, &y, &m, &d))
            continue;
        int64_t ws = local_minute(cal->zone, day, cal->start_min);
        int64_t we = local_minute(cal->zone, day, cal->end_min);
        int64_t lo = ws > from_ms ? ws : from_ms, hi = we < to_ms ? we : to_ms;
        if (hi > lo)
            total_ms += hi - lo;
    }
    return total_ms / 1000;
}

int pacing_work_days(const pacing_calendar_t *cal, int64_t from_ms, int64_t to_ms)
{
    if (to_ms <= from_ms)
        return 0;
    int n = 0;
    int64_t last = local_day(cal->zone, to_ms - 1);
    for (int64_t day = local_day(cal->zone, from_ms); day <= last; day++) {
        int y, m, d;
        n += is_working_day(cal, day, &y, &m, &d);
    }
    return n;
}

/* num / den rounded half up to 4 fraction digits, trailing zeros trimmed. num, den >= 0,
 * den > 0; 128-bit so target x seconds cannot overflow. */
static void format_ratio(unsigned __int128 num, unsigned __int128 den, char *buf, size_t size)
{
    unsigned __int128 scaled = (num * 20000 + den) / (2 * den);
    unsigned __int128 whole = scaled / 10000;
    unsigned frac = (unsigned)(scaled % 10000);
    char digits[48];
    size_t n = 0;
    do {
        digits[n++] = (char)('0' + (int)(whole % 10));
        whole /= 10;
    } while (whole && n < sizeof digits);
    size_t pos = 0;
    while (n && pos + 1 < size)
        buf[pos++] = digits[--n];
    if (frac && pos + 6 < size) {
        int width = 4;
        while (frac % 10 == 0) {
            frac /= 10;
            width--;
        }
        pos += (size_t)snprintf(buf + pos, size - pos, ".%0*u", width, frac);
    }
    buf[pos < size ? pos : size - 1] = '\0';
}

void pacing_evaluate(const pacing_calendar_t *cal, int64_t start_ms, int64_t end_ms,
                     int64_t now_ms, int64_t target, int64_t actual, int warn_pct,
                     int critical_pct, pacing_result_t *out)
{
    memset(out, 0, sizeof *out);
    int64_t total = pacing_work_s(cal, start_ms, end_ms);
    int64_t elapsed = pacing_work_s(cal, start_ms, now_ms < end_ms ? now_ms : end_ms);
    if (total == 0) /* no working time at all: the whole target is due */
        elapsed = total = 1;
    if (target < 0)
        target = 0;
    if (actual < 0)
        actual = 0;
    format_ratio((unsigned __int128)target * (unsigned __int128)elapsed,
                 (unsigned __int128)total, out->expected, sizeof out->expected);
    out->state = PACING_OK;
    if (target == 0)
        return;
    /* pct = num / den */
    unsigned __int128 num = (unsigned __int128)100 * (unsigned __int128)actual;
    unsigned __int128 den = (unsigned __int128)target;
    if (elapsed > 0) {
        num *= (unsigned __int128)total;
        den *= (unsigned __int128)elapsed;
    }
    out->has_pct = true;
    format_ratio(num, den, out->pct, sizeof out->pct);
    /* Compared exactly, not through the rounded string. */
    if (num >= (unsigned __int128)(warn_pct > 0 ? warn_pct : 0) * den)
        out->state = PACING_OK;
    else if (num >= (unsigned __int128)(critical_pct > 0 ? critical_pct : 0) * den)
        out->state = PACING_WARN;
    else
        out->state = PACING_CRITICAL;
}

const char *pacing_state_name(enum pacing_state state)
{
    switch (state) {
    case PACING_OK: return "ok";
    case PACING_WARN: return "warn";
    case PACING_CRITICAL: return "critical";
    }
    return "?";
}

/* Rounded to 6 decimals first, so 3 / 0.1 (29.999999999999996 in binary) is 30, not 31. */
static int64_t ceil_micro(long double v)
{
    if (!(v > 0))
        return 0;
    long long micro = llroundl(v * 1000000.0L);
    return (int64_t)((micro + 999999) / 1000000);
}

int64_t pacing_plan_step(double previous, double factor, bool by_per)
{
    if (by_per && !(factor > 0))
        return -1;
    long double v = by_per ? (long double)previous / factor : (long double)previous * factor;
    return ceil_micro(v);
}

int64_t pacing_prorate(double target, const int *part_days, const int *whole_days, size_t n)
{
    long double share = 0;
    for (size_t i = 0; i < n; i++)
        if (whole_days[i] > 0)
            share += (long double)part_days[i] / whole_days[i];
    return ceil_micro((long double)target * share);
}
