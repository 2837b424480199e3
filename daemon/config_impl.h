/* config_impl: what config.c and the section-7 readers (config_calendar.c, config_goals.c,
 * config_alerts.c) share to validate one file. Private to the config module.
 *
 * Validation never stops at the first problem: readers report into a vctx, which holds
 * the config being filled, the JSON path of the node being checked ("$.alerts.rules[1]")
 * and every error found so far. A reader enters a member (extending the path), reports
 * with ERR (the path plus the node's line and column), and pops the path back. Member
 * readers return 1 when the member was set, 0 when absent, -1 when an error was reported. */
#ifndef KPI_CONFIG_IMPL_H
#define KPI_CONFIG_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "json.h"

#define CFG_PATH_CAP 512

struct verror {
    int line, col;
    size_t seq; /* ties keep the order they were found in */
    char *text; /* owned */
};

struct vctx {
    config_t *cfg;
    struct verror *errs;
    size_t n_errs, errs_cap;
    bool oom;
    bool stages_bad; /* "stages" had errors: the stage list may lack a stage the user meant */
    char path[CFG_PATH_CAP];
    size_t plen;
};

/* JSON-quotes s (cut at 64 bytes) into buf; returns buf. */
const char *cfg_quote(const char *s, size_t len, char *buf, size_t cap);
__attribute__((format(printf, 4, 5)))
void cfg_err_at(struct vctx *v, int line, int col, const char *fmt, ...);
#define ERR(v, node, ...) cfg_err_at((v), json_line(node), json_column(node), __VA_ARGS__)

/* Extend the path by ".key" / "[i]"; each returns the length cfg_path_pop restores. */
size_t cfg_path_key(struct vctx *v, const char *key, size_t klen);
size_t cfg_path_index(struct vctx *v, size_t i);
void cfg_path_pop(struct vctx *v, size_t saved);

char *cfg_dup(struct vctx *v, const char *s); /* strdup; NULL and v->oom on failure */

/* Node readers: the path already names the node. */
const char *cfg_node_str(struct vctx *v, const json_node_t *n, bool nullable);
int cfg_node_int(struct vctx *v, const json_node_t *n, int64_t min, int64_t max,
                 int64_t *out);

/* Member readers: push the key onto the path (cfg_enter leaves it for the caller to pop
 * with *saved; the others pop themselves except cfg_read_obj). */
const json_node_t *cfg_enter(struct vctx *v, const json_node_t *obj, const char *key,
                             bool required, size_t *saved);
int cfg_read_int(struct vctx *v, const json_node_t *obj, const char *key, int64_t min,
                 int64_t max, int64_t *out);
int cfg_read_str(struct vctx *v, const json_node_t *obj, const char *key, bool required,
                 bool nullable, char **out);
const json_node_t *cfg_read_obj(struct vctx *v, const json_node_t *obj, const char *key,
                                bool required, size_t *saved);

/* Duplicate keys, and unknown ones unless allowed is NULL. NULL obj is fine. */
void cfg_check_keys(struct vctx *v, const json_node_t *obj, const char *const *allowed);

/* Each member of a name -> object map (duplicates and non-objects reported), with the
 * path at the member and the key's position. */
void cfg_read_map(struct vctx *v, const json_node_t *m, const char *const *body_keys,
                  void (*each)(struct vctx *, const char *, const json_node_t *, int, int));

enum charset { CS_ID, CS_PREFIX, CS_STAGE };
bool cfg_charset_ok(enum charset cs, const char *s);
const char *cfg_charset_rule(enum charset cs);

/* ---- contract section 7: config_calendar.c, config_goals.c, config_alerts.c ----------- */

/* Plain numbers only; called from set_defaults. */
void cfg_goals_defaults(config_t *c);
/* The global "calendar": read before the teams, whose calendars start from it. */
void cfg_read_calendar(struct vctx *v, const json_node_t *root);
/* teams.<t>.calendar of one team entry (the path at the team). */
void cfg_read_team_calendar(struct vctx *v, const json_node_t *team, struct config_team *t);
/* targets, plans, kpi_score and alerts: after teams, managers and stages. */
void cfg_read_goals(struct vctx *v, const json_node_t *root);
void cfg_read_alerts(struct vctx *v, const json_node_t *root);
/* Frees every section-7 field of the config but the team calendars, which die with
 * their teams through cfg_calendar_free. */
void cfg_goals_free(config_t *c);
void cfg_alerts_free(config_t *c);
void cfg_calendar_free(struct config_calendar *cal);

/* Readers shared by the section-7 files (config_goals.c). */
bool cfg_str_is(const json_node_t *n, const char *want); /* a string node equal to want */
/* A required member naming a counter (config_metric_known; an activity counter only when
 * activity_only). */
void cfg_read_metric(struct vctx *v, const json_node_t *obj, const char *key,
                     bool activity_only, char **out);
/* A required period letter "d", "w", "m" or "q". */
void cfg_read_period(struct vctx *v, const json_node_t *obj, const char *key,
                     enum period_kind *out);
/* A finite number >= lo (> lo when above_lo) and <= hi (HUGE_VAL: unbounded). */
void cfg_read_num(struct vctx *v, const json_node_t *obj, const char *key, bool required,
                  double lo, bool above_lo, double hi, double *out);

/* config_secrets.c: reads redis.password_file and kafka.property_files into
 * redis_password and kafka_properties. Errors name the key and the file. */
int config_read_secrets(config_t *c, char *err, size_t errlen);

#endif
