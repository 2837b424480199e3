/* kpictl internals shared by tools/kpictl*.c: options, the Redis pipeline helpers, "now"
 * and its periods, text formatting and the JSON writer. Not a library: kpictl only. */
#ifndef KPICTL_IMPL_H
#define KPICTL_IMPL_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "json.h"
#include "keys.h"
#include "period.h"

/* Where kpictl looks for kpid's configuration without -c: the packaged service's file. */
#define KPICTL_DEFAULT_CONFIG "/etc/kpid/kpid.json"

/* ---- options (kpictl.c) ---- */

struct opts {
    const char *config_path, *command;
    const char *arg;        /* manager, team, top's metric: the positional after the command */
    int kind;               /* enum period_kind, or -1: the command's default */
    const char *period_id;  /* --period given as a full id ("w:2026-W47"), else NULL */
    int watch;              /* seconds between refreshes, 0: once */
    int json;               /* --json */
    const char *scope;      /* funnel */
    const char *metric;     /* top */
    long top_n;             /* top, alerts; 0: not given */
};

/* What every view works with. */
struct ctl {
    const config_t *cfg;
    const char *config_path;
    redisContext *c;
    const struct opts *o;
};

/* ---- redis (kpictl_redis.c) ---- */

/* Connects, authenticates and selects the database; NULL with the reason in err ("redis
 * 127.0.0.1:6379: Connection refused; is kpid's redis running?"). */
redisContext *ctl_connect(const config_t *cfg, const char *config_path, char *err, size_t errlen);

/* Commands appended to one connection, their replies read together afterwards. */
struct pipe {
    redisContext *c;
    size_t n;     /* commands appended */
    int failed;   /* an append failed: the screen is not shown */
};

void pipe_cmd(struct pipe *p, int argc, const char **argv);
void pipe_hget(struct pipe *p, const char *key, const char *field);
void pipe_hgetall(struct pipe *p, const char *key);
/* Reads the p->n replies into out (p->n slots): 0 with every reply, or -1 with none and
 * the error printed. Every reply is read even after an error reply, so the connection
 * stays in step for the next round. */
int pipe_read(struct pipe *p, redisReply **out);
void replies_free(redisReply **r, size_t n);

const char *reply_str(const redisReply *r);   /* bulk string text; NULL otherwise */
long long reply_ll(const redisReply *r);      /* a counter: absent is 0 */
const char *hash_str(const redisReply *all, const char *field); /* HGETALL field or NULL */
long long hash_ll(const redisReply *all, const char *field);
int reply_is_array(const redisReply *r);

/* ---- now and its periods (kpictl_redis.c) ---- */

/* The current periods of the organisation and of every configured team, each in the zone
 * kpid files it in. Built once per screen, so --watch follows the day turning. */
struct periods_now {
    period_set_t org;
    period_set_t *team;   /* one per cfg->teams[i] */
};

int periods_now_init(struct periods_now *pn, const config_t *cfg, int64_t now_ms);
void periods_now_free(struct periods_now *pn);
const period_set_t *periods_now_team(const struct periods_now *pn, const config_t *cfg,
                                     const char *team);
const char *team_zone(const config_t *cfg, const char *team);
const char *manager_team(const config_t *cfg, const char *manager);
const char *manager_role(const config_t *cfg, const char *manager);
/* The period a view shows: --period's full id, else the current one of kind (or dflt). */
const char *period_pick(const struct opts *o, const period_set_t *ps, enum period_kind dflt);

int64_t wall_now_ms(void);
/* The first round trip of a screen: kpid's "now" (the wall clock, or with the event clock
 * kpi:meta last_event_ts) and, when members is given, SMEMBERS kpi:managers. 0, or -1
 * after printing why. */
int read_now(redisContext *c, const config_t *cfg, redisReply **members, int64_t *now_ms);

/* ---- formatting (kpictl_out.c) ---- */

void fmt_grouped(char *buf, size_t size, long long v);      /* 1234567 -> "1,234,567" */
void fmt_units(char *buf, size_t size, long long cents);    /* cents -> grouped units */
void fmt_units_decimal(char *buf, size_t size, const char *cents);
void fmt_percent(char *buf, size_t size, const char *ratio); /* "0.3448" -> "34.5" */
void fmt_utc(char *buf, size_t size, int64_t ms);           /* "2026-11-19T12:00:00Z" */
int clamp_width(size_t w, int lo, int hi);
/* Text from Redis on one terminal line: control characters become spaces; padded. */
void put_clean(const char *s, int width);

/* A JSON writer to stdout that places the commas itself. key is NULL inside arrays. */
struct jw {
    int depth;
    unsigned char has_items[192]; /* deeper than json.h allows, plus our own levels */
};
void jw_begin(struct jw *w, const char *key, char open);   /* '{' or '[' */
void jw_end(struct jw *w, char close);
void jw_str(struct jw *w, const char *key, const char *s);  /* NULL writes null */
void jw_int(struct jw *w, const char *key, long long v);
/* A number kpid wrote as text ("0.1667", "12"): as a JSON number; null when absent or
 * not a number. */
void jw_num(struct jw *w, const char *key, const char *text);
/* A hash value: a number when it reads as one, else a string. */
void jw_auto(struct jw *w, const char *key, const char *text);
void jw_node(struct jw *w, const char *key, const json_node_t *node);
void jw_null(struct jw *w, const char *key);
void jw_bool(struct jw *w, const char *key, int v);
/* Ends the document: a newline, flushed. */
void jw_done(struct jw *w);
/* True when text is a JSON number literal. */
int json_number_text(const char *text);

/* ---- views ---- */

int view_meta(const struct ctl *x);                                         /* kpictl_views.c */
int view_board(const struct ctl *x, const struct periods_now *pn, redisReply *members);
int view_funnel(const struct ctl *x, const struct periods_now *pn);
int view_top(const struct ctl *x, const struct periods_now *pn);
int view_alerts(const struct ctl *x);                                       /* kpictl_alerts.c */
int view_manager(const struct ctl *x, const struct periods_now *pn, redisReply *members);
int view_team(const struct ctl *x, const struct periods_now *pn, redisReply *members);
int view_watch(const struct ctl *x);                                        /* kpictl_watch.c */

/* ---- scope figures (kpictl_scope.c): a counters hash, its :kpi and a pipeline ---- */

/* The figures of one scope and period, HGETALL replies borrowed. */
struct figures {
    const redisReply *counters, *kpi, *pipeline;
};
void figures_text(const config_t *cfg, const struct figures *f);
/* counters, targets, kpi_score, bonus, derived, pipeline members of an open object. */
void figures_json(struct jw *w, const config_t *cfg, const struct figures *f);
/* Parts of it: "counters" (every known counter, 0 when absent) and "targets". */
void figures_counters_json(struct jw *w, const config_t *cfg, const redisReply *counters);
void figures_targets_json(struct jw *w, const redisReply *counters, const redisReply *kpi);
/* The worst <metric>:state of a :kpi hash: "critical", "warn", "ok", or NULL. */
const char *figures_worst_state(const redisReply *kpi);
/* "redis: <what> did not return <want>" when r is not an array; 0 when it is. */
int reply_want_array(const redisReply *r, const char *what);

#endif
