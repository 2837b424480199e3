/* kpictl alerts: the last N entries of the <prefix>:alerts stream, newest last, and how
 * many alerts fire now (the managers' <prefix>:mgr:{<m>}:alerts hashes). Times are the UTC
 * times of the alert objects: alerts of teams in several zones share one clock that way. */
#include <stdlib.h>
#include <string.h>

#include "kpictl_impl.h"

/* Manager column: as wide as the longest name shown, within these bounds; a longer name
 * is shown whole (its line shifts) rather than cut, as an alert must name its manager. */
enum { ALERT_MANAGER_MIN = 7, ALERT_MANAGER_MAX = 18 };

/* What one line shows of a stream entry; "?" for whatever the entry lacks. */
struct alert_row {
    json_node_t *doc;           /* owned; NULL: the entry is not an alert object */
    const char *id;             /* stream entry id, borrowed from the reply */
    const char *entry_manager;  /* the entry's manager field, borrowed; may be NULL */
    char time[10];              /* "12:00:00Z" or "?" */
    const char *state, *severity, *manager, *message, *escalated_to; /* borrowed */
    int digest;
};

static const char *field_or(const json_node_t *obj, const char *name, const char *dflt)
{
    const char *s = json_string(json_object_get(obj, name), NULL);
    return s && s[0] ? s : dflt;
}

/* "2026-11-19T12:00:00Z" -> "12:00:00Z"; kpid writes UTC, so anything else is "?". */
static void alert_time(char *out, size_t size, const char *ts)
{
    size_t n = ts ? strlen(ts) : 0;
    if (n >= 20 && ts[10] == 'T' && ts[13] == ':' && ts[16] == ':' && ts[n - 1] == 'Z')
        snprintf(out, size, "%.8sZ", ts + 11);
    else
        snprintf(out, size, "?");
}

/* entry: [id, [field, value, ...]] as XREVRANGE returns it. */
static void alert_row_fill(struct alert_row *row, const redisReply *entry)
{
    *row = (struct alert_row){.state = "?", .severity = "?", .manager = "?", .message = "?"};
    snprintf(row->time, sizeof row->time, "?");
    if (entry->type != REDIS_REPLY_ARRAY || entry->elements < 2)
        return;
    row->id = reply_str(entry->element[0]);
    row->entry_manager = hash_str(entry->element[1], "manager");
    const char *text = hash_str(entry->element[1], "json");
    char err[128];
    row->doc = text ? json_parse(text, strlen(text), false, err, sizeof err) : NULL;
    if (row->doc && json_kind(row->doc) != JSON_OBJECT) {
        json_free(row->doc);
        row->doc = NULL;
    }
    if (!row->doc)
        return;
    alert_time(row->time, sizeof row->time, field_or(row->doc, "ts", NULL));
    row->state = field_or(row->doc, "state", "?");
    row->severity = field_or(row->doc, "severity", "?");
    /* The stream entry names the manager too: the fallback when the object does not. */
    row->manager = field_or(row->doc, "manager", row->entry_manager);
    if (!row->manager || !row->manager[0])
        row->manager = "?";
    row->message = field_or(row->doc, "message", "?");
    row->escalated_to = field_or(row->doc, "escalated_to", NULL);
    row->digest = json_bool(json_object_get(row->doc, "digest"));
}

/* kpid's messages start with the manager ("ivanov: 2 meetings held ...", "ivanov
 * (critical): ...", "ivanov is back on pace: ..."); the manager has a column of its own
 * and the severity too, so they are not said twice. Other text is shown whole. */
static const char *message_rest(const char *msg, const char *manager, const char *severity)
{
    size_t n = strlen(manager);
    if (strncmp(msg, manager, n) || (msg[n] != ':' && msg[n] != ' '))
        return msg;
    const char *s = msg + n;
    char sev[40];
    snprintf(sev, sizeof sev, " (%s)", severity);
    if (!strncmp(s, sev, strlen(sev)))
        s += strlen(sev);
    if (s[0] == ':')
        s++;
    return s[0] == ' ' ? s + 1 : s;
}

static void alert_row_show(const struct alert_row *row, int wm)
{
    if (!row->doc) {
        printf("%-9s entry %s is not an alert\n", "?", row->id ? row->id : "?");
        return;
    }
    printf("%-9s %-8s %-8s ", row->time,
           !strcmp(row->state, "firing") ? "FIRING" : !strcmp(row->state, "resolved") ? "RESOLVED"
                                                                                        : "?",
           row->severity);
    put_clean(row->manager, wm);
    putchar(' ');
    if (row->escalated_to) {
        printf("[→ ");
        put_clean(row->escalated_to, 0);
        printf("] ");
    }
    if (row->digest)
        printf("[digest] ");
    put_clean(message_rest(row->message, row->manager, row->severity), 0);
    putchar('\n');
}

/* The managers whose firing hashes are counted: those configured and those seen in
 * events (kpid evaluates both), each once. Pointers borrowed from members and cfg. */
static const char **alert_managers(const config_t *cfg, const redisReply *members, size_t *n)
{
    const char **ids = calloc(members->elements + cfg->n_managers + 1, sizeof *ids);
    *n = 0;
    for (size_t i = 0; ids && i < cfg->n_managers; i++)
        ids[(*n)++] = cfg->managers[i].id;
    for (size_t i = 0; ids && i < members->elements; i++) {
        const char *m = reply_str(members->element[i]);
        if (m && !config_manager_find(cfg, m))
            ids[(*n)++] = m;
    }
    return ids;
}

/* The stream part of the JSON document; the firing part follows. */
static void alerts_json_rows(struct jw *w, const struct alert_row *rows, size_t shown,
                             long long total)
{
    jw_int(w, "total", total);
    jw_begin(w, "alerts", '[');
    for (size_t i = 0; i < shown; i++) {
        jw_begin(w, NULL, '{');
        jw_str(w, "id", rows[i].id);
        jw_str(w, "manager", rows[i].doc ? rows[i].manager : rows[i].entry_manager);
        if (rows[i].doc)
            jw_node(w, "alert", rows[i].doc);
        else
            jw_null(w, "alert");
        jw_end(w, '}');
    }
    jw_end(w, ']');
}

/* The firing hashes' sizes, one per manager counted. */
struct firing {
    const char **ids;
    redisReply **rep;
    size_t n;
};

static void firing_free(struct firing *f)
{
    if (f->rep)
        replies_free(f->rep, f->n);
    free(f->rep);
    free(f->ids);
}

/* One round trip: HLEN of every manager's firing hash. 0, or -1 after printing why. */
static int firing_read(const struct ctl *x, const redisReply *members, struct firing *f)
{
    *f = (struct firing){0};
    f->ids = alert_managers(x->cfg, members, &f->n);
    f->rep = calloc(f->n ? f->n : 1, sizeof *f->rep);
    if (!f->ids || !f->rep) {
        fprintf(stderr, "kpictl: out of memory\n");
        f->n = 0;
        firing_free(f);
        return -1;
    }
    struct pipe p = {x->c, 0, 0};
    for (size_t i = 0; i < f->n; i++) {
        char key[KEYS_MAX];
        keys_scope(key, sizeof key, x->cfg->redis_prefix, SCOPE_MANAGER, f->ids[i], "alerts");
        const char *argv[] = {"HLEN", key};
        pipe_cmd(&p, 2, argv);
    }
    if (pipe_read(&p, f->rep) != 0) {
        f->n = 0;
        firing_free(f);
        return -1;
    }
    return 0;
}

/* "firing now: K alerts for M managers", or the "firing" member of the JSON document. */
static void firing_show(const struct firing *f, struct jw *w)
{
    long long alerts = 0, managers = 0;
    for (size_t i = 0; i < f->n; i++) {
        alerts += f->rep[i]->integer;
        managers += f->rep[i]->integer > 0;
    }
    if (!w) {
        printf("firing now: %lld alert%s for %lld manager%s\n", alerts, alerts == 1 ? "" : "s",
               managers, managers == 1 ? "" : "s");
        return;
    }
    jw_begin(w, "firing", '{');
    jw_int(w, "alerts", alerts);
    jw_int(w, "managers", managers);
    jw_begin(w, "by_manager", '{');
    for (size_t i = 0; i < f->n; i++)
        if (f->rep[i]->integer > 0)
            jw_int(w, f->ids[i], f->rep[i]->integer);
    jw_end(w, '}');
    jw_end(w, '}');
}

int view_alerts(const struct ctl *x)
{
    char stream[KEYS_MAX], members[KEYS_MAX], count[24];
    keys_global(stream, sizeof stream, x->cfg->redis_prefix, "alerts");
    keys_global(members, sizeof members, x->cfg->redis_prefix, "managers");
    snprintf(count, sizeof count, "%ld", x->o->top_n ? x->o->top_n : 10);
    const char *range[] = {"XREVRANGE", stream, "+", "-", "COUNT", count},
               *len[] = {"XLEN", stream}, *smembers_argv[] = {"SMEMBERS", members};
    struct pipe p = {x->c, 0, 0};
    pipe_cmd(&p, 6, range);
    pipe_cmd(&p, 2, len);
    pipe_cmd(&p, 2, smembers_argv);
    redisReply *rep[3] = {NULL, NULL, NULL};
    if (pipe_read(&p, rep) != 0)
        return 1;
    size_t shown = reply_is_array(rep[0]) ? rep[0]->elements : 0;
    struct alert_row *rows = calloc(shown ? shown : 1, sizeof *rows);
    int rc = 1;
    if (rows && reply_want_array(rep[2], "SMEMBERS") == 0) {
        size_t wm = 0;
        for (size_t i = 0; i < shown; i++) {
            /* XREVRANGE gives the newest first; the screen reads down to the newest. */
            alert_row_fill(&rows[i], rep[0]->element[shown - 1 - i]);
            if (rows[i].doc && strlen(rows[i].manager) > wm)
                wm = strlen(rows[i].manager);
        }
        struct firing f;
        /* Both round trips before any output: a screen is shown whole or not at all. */
        rc = firing_read(x, rep[2], &f) == 0 ? 0 : 1;
        struct jw w = {0};
        if (rc == 0 && x->o->json) {
            jw_begin(&w, NULL, '{');
            alerts_json_rows(&w, rows, shown, rep[1]->integer);
            firing_show(&f, &w);
            jw_end(&w, '}');
            jw_done(&w);
        } else if (rc == 0) {
            printf("last %zu of %lld alerts, newest last (times UTC)\n", shown, rep[1]->integer);
            for (size_t i = 0; i < shown; i++)
                alert_row_show(&rows[i], clamp_width(wm, ALERT_MANAGER_MIN, ALERT_MANAGER_MAX));
            if (shown == 0)
                printf("          (no alerts yet)\n");
            firing_show(&f, NULL);
        }
        if (rc == 0)
            firing_free(&f);
    } else if (!rows) {
        fprintf(stderr, "kpictl: out of memory\n");
    }
    for (size_t i = 0; rows && i < shown; i++)
        json_free(rows[i].doc);
    free(rows);
    replies_free(rep, 3);
    return rc;
}
