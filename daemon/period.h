/* period: epoch milliseconds + IANA zone -> calendar period ids (d/w/m/q) and their bounds.
 *
 * Zones are read from the system's compiled tz database (TZif files under $TZDIR or
 * /usr/share/zoneinfo), the same data the OS updates through the tzdata package.
 * A zone handle caches the last local-date segment it resolved, so consecutive events of
 * the same day cost a range check, not a zone lookup. No I/O after period_zone_open, no
 * clock reads. A zone handle is not thread-safe (its cache mutates). */
#ifndef KPI_PERIOD_H
#define KPI_PERIOD_H

#include <stddef.h>
#include <stdint.h>

typedef struct period_zone period_zone_t;

enum period_kind { PERIOD_DAY, PERIOD_WEEK, PERIOD_MONTH, PERIOD_QUARTER, PERIOD_KINDS };

/* The four periods an instant belongs to in one zone. */
typedef struct period_set {
    char id[PERIOD_KINDS][16];      /* "d:2026-11-16", "w:2026-W47", "m:2026-11", "q:2026-Q4" */
    int64_t start_ms[PERIOD_KINDS]; /* first UTC ms whose local date is in the period */
    int64_t end_ms[PERIOD_KINDS];   /* first UTC ms after the period */
} period_set_t;

/* Opens a zone by IANA name ("Europe/Moscow", "UTC"). Returns NULL and fills err when
 * the name is unsafe (empty, absolute, "..", a character outside [A-Za-z0-9_+./-]) or no
 * valid TZif file exists for it under $TZDIR (default /usr/share/zoneinfo). Files must be
 * TZif v2 or later without leap seconds (so "right/..." zones are refused). "UTC" and
 * "Etc/UTC" work even when no tzdata is installed. */
period_zone_t *period_zone_open(const char *iana_name, char *err, size_t errlen);
void period_zone_free(period_zone_t *zone);
const char *period_zone_name(const period_zone_t *zone);

/* Opens a zone from a POSIX TZ string alone ("EST5EDT,M3.2.0,M11.1.0", "<+03>-3"), with the
 * RFC 8536 extensions (hours -167..167 in rule times). Its name is the string. For tests and
 * for rules no tzdata file carries; NULL and err when the string is not valid. */
period_zone_t *period_zone_open_posix(const char *tz, char *err, size_t errlen);

/* The periods containing utc_ms. The returned pointer is owned by the zone and valid until
 * the next period_of or period_utc_offset_s call on the same zone. Never NULL. Instants outside years 1..9999 are clamped
 * into that range (so ids always have 4-digit years); for those, start_ms <= utc_ms < end_ms
 * does not hold. Otherwise it always does, for every kind. A day's bounds run from local
 * midnight (or the change that skipped it) to the next day's; a date that occurs twice,
 * after a backward jump across midnight (Alaska 1867), is bounded by all of its instants. */
const period_set_t *period_of(period_zone_t *zone, int64_t utc_ms);

/* Offset from UTC, in seconds, in force at utc_ms. */
int32_t period_utc_offset_s(period_zone_t *zone, int64_t utc_ms);

/* The UTC ms of local wall time y-m-d h:mi:00 in the zone. A wall time skipped by a
 * forward change maps to the instant of the change; a repeated one to its first instance. */
int64_t period_local_to_utc(period_zone_t *zone, int y, int m, int d, int h, int mi);

/* The kind and first local date of a period id ("w:2026-W47" -> week, 2026-11-16); -1 when
 * the id is not one period_of produces. */
int period_id_first_day(const char *id, enum period_kind *kind, int *y, int *m, int *d);

/* Pure calendar arithmetic (proleptic Gregorian). */
int64_t period_days_from_civil(int y, int m, int d);           /* days since 1970-01-01 */
void period_civil_from_days(int64_t days, int *y, int *m, int *d);
int period_weekday(int y, int m, int d);                         /* 1 = Monday .. 7 = Sunday */
void period_iso_week(int y, int m, int d, int *iso_year, int *iso_week);

#endif
