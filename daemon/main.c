/* kpid: live sales KPIs from Kafka activity events into Redis. */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "loop.h"
#include "rebuild.h"

#define EXIT_RUNTIME 1
#define EXIT_USAGE 2

static void usage(FILE *out)
{
    fprintf(out,
            "usage: kpid -c FILE [--check-config | --rebuild]\n"
            "       kpid --version\n"
            "\n"
            "kpid consumes sales activity events from Kafka and keeps live KPIs in Redis.\n"
            "It runs in the foreground and logs to stderr (see kpid(8) and README.md).\n"
            "\n"
            "  -c, --config FILE    configuration (JSON, comments allowed)\n"
            "  -n, --check-config   validate the configuration, print every error with its\n"
            "                       JSON path, exit 0 (valid) or 2\n"
            "      --rebuild        recompute every counter from the topics' beginning into\n"
            "                       \"<prefix>.rebuild\" (Kafka group \"<group>.rebuild\", no\n"
            "                       alerts), and once caught up switch dashboards to it in one\n"
            "                       transaction; then restart the live kpid. Exit 0 switched,\n"
            "                       1 failed or interrupted (the live data is untouched)\n"
            "  -V, --version        print the version\n"
            "  -h, --help           this text\n"
            "\n"
            "Signals: SIGTERM/SIGINT flush and stop (exit 0); SIGHUP reloads the configuration\n"
            "(a broken file is refused and the running one kept).\n"
            "Exit codes: 0 clean stop, 1 runtime failure, 2 bad usage or configuration.\n"
            "Environment: CREDENTIALS_DIRECTORY (systemd LoadCredential=: where relative\n"
            "redis.password_file and kafka.property_files names are read), NOTIFY_SOCKET and\n"
            "WATCHDOG_USEC (systemd Type=notify and watchdog), JOURNAL_STREAM (log lines get\n"
            "<N> priorities instead of timestamps).\n");
}

static void on_stop(int sig)
{
    (void)sig;
    loop_request_stop();
}

static void on_reload(int sig)
{
    (void)sig;
    loop_request_reload();
}

/* Turns cfg into the rebuild run's and clears what an earlier unfinished one left. */
static int rebuild_start(const char *config_path, config_t *cfg, config_t **live)
{
    static char err[16384];
    size_t removed = 0;
    if (config_load_file(config_path, live, err, sizeof err) != 0 ||
        rebuild_configure(cfg, err, sizeof err) != 0) {
        log_error("rebuild: %s", err);
        config_free(*live);
        *live = NULL;
        return EXIT_USAGE;
    }
    if (rebuild_wipe(cfg, &removed, err, sizeof err) != 0) {
        log_error("rebuild: %s; nothing was changed", err);
        config_free(*live);
        *live = NULL;
        return EXIT_RUNTIME;
    }
    if (removed)
        log_info("rebuild: removed %zu keys an earlier unfinished rebuild left under %s",
                 removed, cfg->redis_prefix);
    log_info("rebuild: recomputing every counter from the topics' beginning into prefix %s "
             "(consumer group %s); alerts are not evaluated",
             cfg->redis_prefix, cfg->kafka_group_id);
    return 0;
}

static int rebuild_finish(const config_t *live, bool caught_up)
{
    static char err[4096];
    if (!caught_up) {
        log_error("rebuild: stopped before it caught up; the live data under %s is untouched "
                  "(the next --rebuild starts over)",
                  live->redis_prefix);
        return EXIT_RUNTIME;
    }
    struct rebuild_stats st;
    if (rebuild_switch(live, &st, err, sizeof err) != 0) {
        log_error("rebuild: switch failed: %s; the live data under %s is untouched", err,
                  live->redis_prefix);
        return EXIT_RUNTIME;
    }
    log_info("rebuild: switched: %zu rebuilt keys are now under %s, %zu old keys removed, %zu "
             "alert keys kept. Restart the live kpid now (systemctl restart kpid): it resumes "
             "from the rebuilt offsets",
             st.renamed, live->redis_prefix, st.deleted, st.kept);
    return 0;
}

int main(int argc, char **argv)
{
    const char *config_path = NULL;
    int check_only = 0, rebuild = 0;

    log_init("kpid");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if ((!strcmp(a, "-c") || !strcmp(a, "--config")) && i + 1 < argc) {
            config_path = argv[++i];
        } else if (!strcmp(a, "-n") || !strcmp(a, "--check-config")) {
            check_only = 1;
        } else if (!strcmp(a, "--rebuild")) {
            rebuild = 1;
        } else if (!strcmp(a, "-V") || !strcmp(a, "--version")) {
            printf("kpid %s\n", KPID_VERSION);
            return 0;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "kpid: unknown or incomplete argument '%s'\n", a);
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (!config_path) {
        fprintf(stderr, "kpid: -c FILE is required\n");
        usage(stderr);
        return EXIT_USAGE;
    }

    static char err[16384];
    config_t *cfg = NULL;
    if (config_load_file(config_path, &cfg, err, sizeof err) != 0) {
        fprintf(stderr, "%s", err);
        if (err[0] && err[strlen(err) - 1] != '\n')
            fputc('\n', stderr);
        fprintf(stderr, "kpid: %s: configuration rejected\n", config_path);
        return EXIT_USAGE;
    }
    if (check_only && rebuild) {
        fprintf(stderr, "kpid: --check-config and --rebuild exclude each other\n");
        usage(stderr);
        config_free(cfg);
        return EXIT_USAGE;
    }
    /* Also under --check-config: systemd's ExecStartPre puts it in the journal. */
    if (config_check_secret_exposure(config_path, cfg, err, sizeof err))
        log_warn("%s", err);
    if (check_only) {
        printf("%s: configuration OK\n", config_path);
        config_free(cfg);
        return 0;
    }
    enum log_level level;
    if (log_level_parse(cfg->log_level, &level) == 0)
        log_set_level(level);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_stop;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_reload;
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    config_t *live = NULL; /* --rebuild: the configuration as the live kpid runs it */
    if (rebuild) {
        int rc = rebuild_start(config_path, cfg, &live);
        if (rc != 0) {
            config_free(cfg);
            return rc;
        }
    }
    loop_t *loop = loop_new(cfg, config_path, err, sizeof err);
    if (!loop) {
        log_error("cannot start: %s", err);
        config_free(live);
        return EXIT_RUNTIME;
    }
    if (rebuild)
        loop_set_rebuild(loop);
    int rc = loop_run(loop);
    bool caught_up = loop_rebuild_caught_up(loop);
    loop_free(loop);
    if (rebuild) {
        rc = rebuild_finish(live, caught_up);
        config_free(live);
    }
    return rc;
}
