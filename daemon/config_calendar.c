/* config_calendar: "calendar" and teams.<t>.calendar (contract section 7): working days,
 * working hours and holidays, which pacing and inactivity alerts count working time by.
 *
 * A team's calendar starts as a copy of the global one, so the global one is read first
 * whatever the order of the file; every calendar owns its holiday list. */
#include "config_impl.h"

#include <stdlib.h>
#include <string.h>

#include "period.h"

static const char *const weekday_names[7] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};

static void read_work_days(struct vctx *v, const json_node_t *obj, unsigned *out)
{
    size_t saved;
    const json_node_t *a = cfg_enter(v, obj, "work_days", false, &saved);
    if (a && (json_kind(a) != JSON_ARRAY || json_array_len(a) == 0)) {
        ERR(v, a, "must be a non-empty array of weekdays (\"mon\" .. \"sun\")");
    } else if (a) {
        unsigned days = 0;
        bool ok = true;
        for (size_t i = 0; i < json_array_len(a); i++) {
            size_t s = cfg_path_index(v, i);
            const json_node_t *e = json_array_at(a, i);
            unsigned w = 0;
            while (w < 7 && !cfg_str_is(e, weekday_names[w]))
                w++;
            unsigned bit = w < 7 ? 1u << (w + 1) : 0; /* bit 1 = Monday, as pacing counts */
            if (!bit)
                ERR(v, e, "must be one of \"mon\", \"tue\", \"wed\", \"thu\", \"fri\", \"sat\", "
                    "\"sun\"");
            else if (days & bit)
                ERR(v, e, "duplicate day \"%s\"", weekday_names[w]);
            ok &= bit && !(days & bit);
            days |= bit;
            cfg_path_pop(v, s);
        }
        if (ok)
            *out = days;
    }
    cfg_path_pop(v, saved);
}

/* Parses a fixed-width run of digits; -1 when one is not a digit. */
static int digits(const char *s, size_t n)
{
    int x = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        x = x * 10 + (s[i] - '0');
    }
    return x;
}

/* "HH:MM" from 00:00 to 24:00 as minutes; -1 otherwise. */
static int parse_hhmm(const json_node_t *n)
{
    size_t len;
    const char *s = json_string(n, &len);
    if (!s || len != 5 || s[2] != ':')
        return -1;
    int h = digits(s, 2), m = digits(s + 3, 2);
    if (h < 0 || m < 0 || h > 24 || m > 59 || (h == 24 && m != 0))
        return -1;
    return h * 60 + m;
}

static void read_work_hours(struct vctx *v, const json_node_t *obj, struct config_calendar *cal)
{
    size_t saved;
    const json_node_t *a = cfg_enter(v, obj, "work_hours", false, &saved);
    if (a && (json_kind(a) != JSON_ARRAY || json_array_len(a) != 2)) {
        ERR(v, a, "must be [\"HH:MM\", \"HH:MM\"] (start, end)");
    } else if (a) {
        int t[2];
        for (size_t i = 0; i < 2; i++) {
            size_t s = cfg_path_index(v, i);
            t[i] = parse_hhmm(json_array_at(a, i));
            if (t[i] < 0)
                ERR(v, json_array_at(a, i), "must be a time \"HH:MM\" from \"00:00\" to \"24:00\"");
            cfg_path_pop(v, s);
        }
        if (t[0] >= 0 && t[1] >= 0 && t[0] >= t[1]) {
            ERR(v, a, "the start must be before the end");
        } else if (t[0] >= 0 && t[1] >= 0) {
            cal->start_min = t[0];
            cal->end_min = t[1];
        }
    }
    cfg_path_pop(v, saved);
}

/* "YYYY-MM-DD", a real date of years 0001..9999, as days since 1970-01-01. */
static int parse_date(const json_node_t *n, int64_t *day)
{
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    size_t len;
    const char *s = json_string(n, &len);
    if (!s || len != 10 || s[4] != '-' || s[7] != '-')
        return -1;
    int y = digits(s, 4), m = digits(s + 5, 2), d = digits(s + 8, 2);
    if (y < 1 || m < 1 || m > 12 || d < 1)
        return -1;
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (d > mdays[m - 1] + (m == 2 && leap))
        return -1;
    *day = period_days_from_civil(y, m, d);
    return 0;
}

static int day_cmp(const void *pa, const void *pb)
{
    int64_t a = *(const int64_t *)pa, b = *(const int64_t *)pb;
    return (a > b) - (a < b);
}

/* 1 when "holidays" is present (its valid dates stored sorted and unique), 0 when absent. */
static int read_holidays(struct vctx *v, const json_node_t *obj, struct config_calendar *cal)
{
    size_t saved;
    const json_node_t *a = cfg_enter(v, obj, "holidays", false, &saved);
    size_t n = json_array_len(a), k = 0;
    if (a && json_kind(a) != JSON_ARRAY) {
        ERR(v, a, "must be an array of dates \"YYYY-MM-DD\"");
    } else if (a) {
        int64_t *days = n ? malloc(n * sizeof *days) : NULL;
        if (n && !days)
            v->oom = true;
        for (size_t i = 0; days && i < n; i++) {
            size_t s = cfg_path_index(v, i);
            if (parse_date(json_array_at(a, i), &days[k]) == 0)
                k++;
            else
                ERR(v, json_array_at(a, i), "must be a date \"YYYY-MM-DD\"");
            cfg_path_pop(v, s);
        }
        if (k)
            qsort(days, k, sizeof *days, day_cmp);
        size_t u = 0;
        for (size_t i = 0; i < k; i++)
            if (u == 0 || days[i] != days[u - 1])
                days[u++] = days[i];
        cfg_calendar_free(cal);
        cal->holidays = u ? days : NULL;
        cal->n_holidays = u;
        if (!u)
            free(days);
    }
    cfg_path_pop(v, saved);
    return a ? 1 : 0;
}

/* Returns read_holidays' answer: whether the object named its own holidays. */
static int read_calendar_body(struct vctx *v, const json_node_t *obj, struct config_calendar *cal)
{
    static const char *const keys[] = {"work_days", "work_hours", "holidays", NULL};
    cfg_check_keys(v, obj, keys);
    read_work_days(v, obj, &cal->work_days);
    read_work_hours(v, obj, cal);
    return read_holidays(v, obj, cal);
}

void cfg_read_calendar(struct vctx *v, const json_node_t *root)
{
    size_t saved;
    const json_node_t *c = cfg_read_obj(v, root, "calendar", false, &saved);
    if (c)
        read_calendar_body(v, c, &v->cfg->calendar);
    cfg_path_pop(v, saved);
}

void cfg_read_team_calendar(struct vctx *v, const json_node_t *team, struct config_team *t)
{
    const struct config_calendar *g = &v->cfg->calendar;
    size_t saved;
    const json_node_t *c = cfg_read_obj(v, team, "calendar", false, &saved);
    if (c) {
        /* Keys the team leaves out are the global calendar's: a team that only shifts its
         * hours keeps the company's holidays. A team's "holidays" replaces the list. */
        t->has_calendar = true;
        t->calendar = (struct config_calendar){g->work_days, g->start_min, g->end_min, NULL, 0};
        if (read_calendar_body(v, c, &t->calendar) == 0 && g->n_holidays) {
            t->calendar.holidays = malloc(g->n_holidays * sizeof *g->holidays);
            if (!t->calendar.holidays) {
                v->oom = true;
            } else {
                memcpy(t->calendar.holidays, g->holidays, g->n_holidays * sizeof *g->holidays);
                t->calendar.n_holidays = g->n_holidays;
            }
        }
    }
    cfg_path_pop(v, saved);
}

const struct config_calendar *config_calendar_of(const config_t *cfg, const char *team)
{
    const struct config_team *t = team ? config_team_find(cfg, team) : NULL;
    return t && t->has_calendar ? &t->calendar : &cfg->calendar;
}

void cfg_calendar_free(struct config_calendar *cal)
{
    free(cal->holidays);
    cal->holidays = NULL;
    cal->n_holidays = 0;
}

