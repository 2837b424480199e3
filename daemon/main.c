/* kpid: live sales KPIs from Kafka activity events into Redis. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "loop.h"

#define EXIT_RUNTIME 1
#define EXIT_USAGE 2

static void usage(FILE *out)
{
    fprintf(out,
            "usage: kpid -c FILE [--check-config]\n"
            "       kpid --version\n"
            "\n"
            "  -c, --config FILE    configuration (JSON, comments allowed)\n"
            "  -n, --check-config   validate the configuration, print every error, exit\n"
            "  -V, --version        print the version\n"
            "  -h, --help           this text\n"
            "\n"
            "Signals: SIGTERM/SIGINT flush and stop (exit 0); SIGHUP reloads the configuration.\n"
            "Exit codes: 0 clean stop, 1 runtime failure, 2 bad usage or configuration.\n");
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

int main(int argc, char **argv)
{
    const char *config_path = NULL;
    int check_only = 0;

    log_init("kpid");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if ((!strcmp(a, "-c") || !strcmp(a, "--config")) && i + 1 < argc) {
            config_path = argv[++i];
        } else if (!strcmp(a, "-n") || !strcmp(a, "--check-config")) {
            check_only = 1;
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

    loop_t *loop = loop_new(cfg, config_path, err, sizeof err);
    if (!loop) {
        log_error("cannot start: %s", err);
        return EXIT_RUNTIME;
    }
    int rc = loop_run(loop);
    loop_free(loop);
    return rc;
}
