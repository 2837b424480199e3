/* kpictl: read kpid's KPIs from Redis, for people and scripts. This file holds the
 * command line (options, --help, dispatch); the views are in tools/kpictl_*.c.
 *
 * Periods are the current ones in the zone kpid files each key in (a manager's and a
 * team's: the team's zone; the organisation's and the leaderboards': the global zone),
 * resolved with the same period and key code as kpid. "Now" is kpid's: the wall clock, or
 * with "alerts": {"clock": "event"} the latest event time kpid applied (kpi:meta
 * last_event_ts), so a replayed history shows the day it has reached, like kpid's pacing.
 * Each screen is read with pipelined commands (at most two round trips), so --watch stays
 * cheap with many managers. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kpictl_impl.h"

#ifndef KPID_VERSION
#define KPID_VERSION "unknown"
#endif

static const char *const lb_metrics[] = {"touches", "meetings_held", "deals_won",
                                         "revenue_won_cents"};

static const char synopsis[] =
    "usage: kpictl -c FILE manager MANAGER [--period P] [--json] [--watch SECONDS]\n"
    "       kpictl -c FILE team TEAM [--period P] [--json] [--watch SECONDS]\n"
    "       kpictl -c FILE board  [--period P] [--json] [--watch SECONDS]\n"
    "       kpictl -c FILE funnel [--scope org|team:<t>|mgr:<m>] [--period P] [--json]"
    " [--watch SECONDS]\n"
    "       kpictl -c FILE top    [METRIC] [--period P] [-n N] [--json] [--watch SECONDS]\n"
    "       kpictl -c FILE alerts [-n N] [--watch SECONDS] [--json]\n"
    "       kpictl -c FILE watch  [--period P] [--json]\n"
    "       kpictl -c FILE meta   [--json]\n"
    "       kpictl --help | --version\n";

/* Plain text with fixed sections, so packaging can turn it into a man page. */
static const char help_text[] =
    "NAME\n"
    "    kpictl - show kpid's sales KPIs from Redis, for people and scripts\n"
    "\n"
    "SYNOPSIS\n"
    "    kpictl [-c FILE] COMMAND [ARGUMENT] [OPTIONS]\n"
    "\n"
    "DESCRIPTION\n"
    "    kpictl reads what kpid wrote to Redis (see \"Redis layout\" in kpid's README) and\n"
    "    prints it as aligned tables, or with --json as one JSON document. It reads kpid's\n"
    "    configuration file for the Redis address, database, credentials and key prefix,\n"
    "    the teams, managers, time zones and deal stages. It never writes to Redis.\n"
    "\n"
    "    Periods are the current ones, in the zone kpid files each key in: a manager's and\n"
    "    a team's in the team's time_zone, the organisation's and the leaderboards' in the\n"
    "    global time_zone. \"Now\" is the wall clock, or, with \"alerts\": {\"clock\":\n"
    "    \"event\"} in the configuration, kpid's event clock (kpi:meta last_event_ts).\n"
    "    Every screen costs at most two pipelined round trips to Redis.\n"
    "\n"
    "COMMANDS\n"
    "    manager MANAGER\n"
    "        One manager for the period (default: today): team, role, every counter of\n"
    "        kpi:mgr:{MANAGER}:<period> (absent counters are 0), each target with its\n"
    "        actual value, expected-by-now value, pct and state (ok, warn, critical),\n"
    "        kpi_score and bonus when the period has them, the derived figures (win_rate,\n"
    "        avg_deal_cents, avg_cycle_days, conv:<a>><b>, touches_per_first_meeting,\n"
    "        next_step_rate), the open pipeline now, the rolling 24h/7d/30d windows, the\n"
    "        alerts firing now and the latest activity per counter (UTC). A manager that\n"
    "        is neither configured nor has any data in Redis is an error.\n"
    "\n"
    "    team TEAM\n"
    "        One team for the period (default: today): the team's counters, targets,\n"
    "        derived figures and pipeline as for manager, then a line per manager of the\n"
    "        team (configured with that team; for \"unassigned\" also every manager kpid\n"
    "        saw in events without a configuration): calls, emails, meetings held,\n"
    "        touches, deals won, revenue won and open pipeline in currency units, alerts\n"
    "        firing and the worst target state. A team that is not configured, not\n"
    "        \"unassigned\" and has no data in Redis is an error.\n"
    "\n"
    "    board\n"
    "        A line per manager in kpi:managers, most touches first, then the\n"
    "        organisation and kpi:meta's event counts (default period: today).\n"
    "\n"
    "    funnel\n"
    "        Stage entries, conversions, win rate, average deal and cycle, and the open\n"
    "        pipeline by stage of one scope (default: the organisation, this month).\n"
    "\n"
    "    top [METRIC]\n"
    "        A leaderboard, kpi:lb:METRIC:<period>: touches (default), meetings_held,\n"
    "        deals_won or revenue_won_cents; equal values share a place.\n"
    "\n"
    "    alerts\n"
    "        The last N alerts of the kpi:alerts stream, newest last, times in UTC, then\n"
    "        how many alerts fire now and for how many managers.\n"
    "\n"
    "    watch\n"
    "        Follows kpi:updates (one message per kpid flush that applied events, or\n"
    "        alert evaluation that sent alerts) and prints one line per message: its\n"
    "        time (UTC) and, for each manager it names, the period and touches, calls,\n"
    "        emails, meetings_held, deals_won, revenue_won_cents, alerts firing and the\n"
    "        worst target state. Runs until interrupted (SIGINT, SIGTERM: exit 0). When\n"
    "        Redis goes away it says so on stderr, retries every second and subscribes\n"
    "        again; updates published while it was away are not shown.\n"
    "\n"
    "    meta\n"
    "        The kpi:meta hash, a field per line.\n"
    "\n"
    "OPTIONS\n"
    "    -c FILE, --config FILE\n"
    "        kpid's configuration file (default " KPICTL_DEFAULT_CONFIG ").\n"
    "    --period P\n"
    "        d, w, m or q: the current day, ISO week, month or quarter; or a full period\n"
    "        id such as d:2026-11-16, w:2026-W47, m:2026-11 or q:2026-Q4. Not for alerts\n"
    "        and meta. Defaults: funnel the month, every other command the day.\n"
    "    --metric METRIC\n"
    "        top only: the same as the METRIC argument.\n"
    "    --scope SCOPE\n"
    "        funnel only: org (default), team:<team> (a configured team or unassigned)\n"
    "        or mgr:<manager>.\n"
    "    -n N\n"
    "        top and alerts: how many lines, 1 to 100000 (default 10).\n"
    "    --json\n"
    "        Machine-readable output: one JSON document per run on one line (watch: one\n"
    "        JSON object per line, per message). Field names are stable; counters and\n"
    "        figures are JSON numbers (figures kpid left out are null or absent), ids,\n"
    "        states and times are strings, amounts are in cents.\n"
    "    --watch SECONDS\n"
    "        Clear the screen and redraw every SECONDS (1 to 86400) until interrupted or\n"
    "        the first error. Not with --json; see the watch command.\n"
    "    -h, --help\n"
    "        This text.\n"
    "    --version\n"
    "        kpictl's version.\n"
    "\n"
    "OUTPUT\n"
    "    Tables: amounts in whole currency units (cents rounded half away from zero,\n"
    "    grouped: 35,108,940) except in manager and team counters, which are shown as\n"
    "    stored; ratios in board and funnel as percentages with one decimal; \"-\" for a\n"
    "    figure kpid left out because its denominator is 0. Manager and team counters\n"
    "    include every counter of kpid's README (\"What counts\") with 0 for absent ones.\n"
    "\n"
    "    JSON fields: manager: manager, team, role, configured, period, zone, counters\n"
    "    {field: n}, targets {metric: {actual, target, expected, pct, state}}, kpi_score,\n"
    "    bonus, derived {field: x}, pipeline {open_count, open_amount_cents,\n"
    "    weighted_amount_cents, open {stage: n}}, rolling {metric: {24h, 7d, 30d}},\n"
    "    alerts [{rule, alert}], last_activity {counter, ts_ms, ts, by_counter}.\n"
    "    team: team, lead, configured, period, zone, counters, targets, kpi_score,\n"
    "    bonus, derived, pipeline, managers [{manager, role, configured, counters,\n"
    "    targets, kpi_score, bonus, state, open_amount_cents, alerts_firing}].\n"
    "    board: managers [{manager, team, period, <counters>, win_rate,\n"
    "    open_amount_cents, touches_24h}], org {period, zone, ...}, meta {...}.\n"
    "    funnel: scope, period, zone, stages [{stage, entered, conversion_field,\n"
    "    conversion, open}], win_rate, avg_deal_cents, avg_cycle_days, pipeline.\n"
    "    top: metric, period, zone, ranked, rows [{rank, manager, team, value}].\n"
    "    alerts: total, alerts [{id, manager, alert}] (alert: the alert object, null for\n"
    "    an entry that is not one), firing {alerts, managers, by_manager {manager: n}}.\n"
    "    watch: ts, managers [{manager, team, period, touches, calls, emails,\n"
    "    meetings_held, deals_won, revenue_won_cents, alerts_firing, state}].\n"
    "    meta: the kpi:meta fields.\n"
    "\n"
    "EXIT STATUS\n"
    "    0   success (watch: stopped by SIGINT or SIGTERM)\n"
    "    1   Redis unreachable or answering an error, an unknown manager or team, or\n"
    "        a time zone that does not load; nothing of the screen is printed\n"
    "    2   bad command line, unreadable or invalid configuration, or an unknown\n"
    "        --scope team\n"
    "\n"
    "FILES\n"
    "    " KPICTL_DEFAULT_CONFIG "\n"
    "        The configuration read without -c (kpid's, as the package installs it).\n"
    "\n"
    "EXAMPLES\n"
    "    kpictl manager ivanov --period w\n"
    "    kpictl team moscow-smb --period m --json | jq '.managers[].counters.touches'\n"
    "    kpictl top touches --period d -n 5\n"
    "    kpictl alerts -n 20\n"
    "    kpictl watch --json\n"
    "    kpictl -c ./kpid.json board --watch 2\n";

enum {
    O_PERIOD = 1, O_WATCH = 2, O_SCOPE = 4, O_METRIC = 8, O_N = 16, O_JSON = 32, O_ARG = 64,
    O_NEED_ARG = 128
};

struct command {
    const char *name;
    int allowed;
};

static const struct command commands[] = {
    {"manager", O_PERIOD | O_WATCH | O_JSON | O_ARG | O_NEED_ARG},
    {"team", O_PERIOD | O_WATCH | O_JSON | O_ARG | O_NEED_ARG},
    {"board", O_PERIOD | O_WATCH | O_JSON},
    {"funnel", O_SCOPE | O_PERIOD | O_WATCH | O_JSON},
    {"top", O_METRIC | O_PERIOD | O_N | O_WATCH | O_JSON | O_ARG},
    {"alerts", O_N | O_WATCH | O_JSON},
    {"watch", O_PERIOD | O_JSON},
    {"meta", O_WATCH | O_JSON},
};

static const struct command *command_find(const char *name)
{
    for (size_t i = 0; name && i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(commands[i].name, name))
            return &commands[i];
    return NULL;
}

/* -1 after printing what is wrong and the synopsis. */
__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "kpictl: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    fputs(synopsis, stderr);
    fputs("Run 'kpictl --help' for every command and option.\n", stderr);
    return -1;
}

static int metric_known(const char *m)
{
    for (size_t i = 0; i < sizeof lb_metrics / sizeof lb_metrics[0]; i++)
        if (!strcmp(m, lb_metrics[i]))
            return 1;
    return 0;
}

static int period_parse(const char *s, struct opts *o)
{
    static const char ids[] = "dwmq";
    const char *p = s[0] && !s[1] ? strchr(ids, s[0]) : NULL;
    enum period_kind kind;
    int y, m, d;
    if (p) {
        o->kind = (int)(p - ids);
        return 0;
    }
    if (strlen(s) < 16 && period_id_first_day(s, &kind, &y, &m, &d) == 0) {
        o->period_id = s;
        o->kind = (int)kind;
        return 0;
    }
    return -1;
}

/* 0 to run, 1 when --help or --version was answered, -1 for a bad command line. */
static int opts_parse(int argc, char **argv, struct opts *o)
{
    *o = (struct opts){.kind = -1};
    int seen = 0, positional_only = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end = NULL;
        int takes_value = !positional_only &&
                          (!strcmp(a, "-c") || !strcmp(a, "--config") || !strcmp(a, "--period") ||
                           !strcmp(a, "--watch") || !strcmp(a, "--scope") ||
                           !strcmp(a, "--metric") || !strcmp(a, "-n"));
        if (takes_value && !v)
            return usage_error("%s needs a value", a);
        if (takes_value)
            i++;
        if (positional_only || a[0] != '-' || !a[1]) {
            if (!o->command)
                o->command = a;
            else if (!o->arg)
                o->arg = a;
            else
                return usage_error("unexpected argument '%s'", a);
        } else if (!strcmp(a, "--")) {
            positional_only = 1;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(help_text, stdout);
            return 1;
        } else if (!strcmp(a, "--version")) {
            printf("kpictl %s\n", KPID_VERSION);
            return 1;
        } else if (!strcmp(a, "-c") || !strcmp(a, "--config")) {
            o->config_path = v;
        } else if (!strcmp(a, "--period")) {
            seen |= O_PERIOD;
            if (period_parse(v, o) != 0)
                return usage_error("--period: d, w, m, q or a period id such as w:2026-W47, "
                                   "not '%s'", v);
        } else if (!strcmp(a, "--watch")) {
            seen |= O_WATCH;
            long s = strtol(v, &end, 10);
            if (*end || s < 1 || s > 86400)
                return usage_error("--watch: seconds from 1 to 86400, not '%s'", v);
            o->watch = (int)s;
        } else if (!strcmp(a, "--scope")) {
            seen |= O_SCOPE;
            o->scope = v;
        } else if (!strcmp(a, "--metric")) {
            seen |= O_METRIC;
            o->metric = v;
        } else if (!strcmp(a, "-n")) {
            seen |= O_N;
            o->top_n = strtol(v, &end, 10);
            if (*end || o->top_n < 1 || o->top_n > 100000)
                return usage_error("-n: a count from 1 to 100000, not '%s'", v);
        } else if (!strcmp(a, "--json")) {
            seen |= O_JSON;
            o->json = 1;
        } else {
            return usage_error("unknown option '%s'", a);
        }
    }
    const struct command *cmd = command_find(o->command);
    if (!o->command)
        return usage_error("no command given");
    if (!cmd)
        return usage_error("unknown command '%s'", o->command);
    if (o->arg)
        seen |= O_ARG;
    if (seen & ~cmd->allowed) {
        /* An option another command takes is a mistake, not something to ignore. */
        static const char *const names[] = {"--period", "--watch", "--scope", "--metric", "-n",
                                            "--json", "an argument"};
        for (int b = 0; b < 7; b++)
            if (seen & ~cmd->allowed & (1 << b))
                return usage_error("%s does not take %s", o->command, names[b]);
    }
    if ((cmd->allowed & O_NEED_ARG) && !o->arg)
        return usage_error("%s needs a name: kpictl %s NAME", o->command, o->command);
    if (o->json && o->watch)
        return usage_error("--json and --watch do not mix: for a stream of JSON lines use "
                           "'kpictl watch --json'");
    if (!strcmp(o->command, "top")) {
        if (o->arg && o->metric && strcmp(o->arg, o->metric))
            return usage_error("top: two metrics given, %s and %s", o->arg, o->metric);
        if (o->arg)
            o->metric = o->arg;
        if (o->metric && !metric_known(o->metric))
            return usage_error("top: touches, meetings_held, deals_won or revenue_won_cents, "
                               "not '%s'", o->metric);
    }
    if (!o->config_path)
        o->config_path = KPICTL_DEFAULT_CONFIG;
    return 0;
}

static int run_once(const struct ctl *x)
{
    const char *cmd = x->o->command;
    if (!strcmp(cmd, "meta"))
        return view_meta(x);
    if (!strcmp(cmd, "alerts"))
        return view_alerts(x);
    int members_needed = !strcmp(cmd, "board") || !strcmp(cmd, "team");
    redisReply *members = NULL;
    int64_t now_ms;
    if (read_now(x->c, x->cfg, members_needed ? &members : NULL, &now_ms) != 0)
        return 1;
    struct periods_now pn;
    if (periods_now_init(&pn, x->cfg, now_ms) != 0) {
        if (members)
            freeReplyObject(members);
        return 1;
    }
    int rc;
    if (!strcmp(cmd, "board"))
        rc = view_board(x, &pn, members);
    else if (!strcmp(cmd, "funnel"))
        rc = view_funnel(x, &pn);
    else if (!strcmp(cmd, "top"))
        rc = view_top(x, &pn);
    else if (!strcmp(cmd, "manager"))
        rc = view_manager(x, &pn, members);
    else
        rc = view_team(x, &pn, members);
    periods_now_free(&pn);
    if (members)
        freeReplyObject(members);
    return rc;
}

int main(int argc, char **argv)
{
    struct opts o;
    int parsed = opts_parse(argc, argv, &o);
    if (parsed != 0)
        return parsed > 0 ? 0 : 2;
    static char err[16384];
    config_t *cfg = NULL;
    if (config_load_file(o.config_path, &cfg, err, sizeof err) != 0) {
        fprintf(stderr, "%s\nkpictl: %s: configuration rejected (give kpid's configuration "
                "with -c FILE)\n", err, o.config_path);
        return 2;
    }
    struct ctl x = {cfg, o.config_path, NULL, &o};
    int rc;
    if (!strcmp(o.command, "watch")) {
        rc = view_watch(&x);
        config_free(cfg);
        return rc;
    }
    char cerr[512];
    x.c = ctl_connect(cfg, o.config_path, cerr, sizeof cerr);
    if (!x.c) {
        fprintf(stderr, "kpictl: %s\n", cerr);
        config_free(cfg);
        return 1;
    }
    do {
        if (o.watch)
            printf("\033[H\033[2J");
        rc = run_once(&x);
        fflush(stdout);
        if (o.watch && rc == 0)
            sleep((unsigned)o.watch);
    } while (o.watch && rc == 0);
    redisFree(x.c);
    config_free(cfg);
    return rc;
}
