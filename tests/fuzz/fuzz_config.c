/* libFuzzer harness: arbitrary bytes -> config_load_string, what kpid does with the file
 * at start and on every SIGHUP.
 *
 * Checks: no crash, no leak (a rejected or accepted config is freed whole), errors are
 * NUL-terminated within their buffer and each line starts with a JSON path ("$"), and an
 * accepted configuration answers the lookups the daemon makes right after loading.
 *
 * config_load_string reads no secrets files (config_load_file does, afterwards); the only
 * files it opens are time zones under /usr/share/zoneinfo, so a run depends on nothing but
 * its input. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    log_set_level(LOG_LEVEL_ERROR);
    return 0;
}

static void check_loaded(const config_t *cfg)
{
    const char *const *names = config_stage_names(cfg);
    for (size_t i = 0; i < cfg->n_stages; i++)
        if (config_stage_find(cfg, names[i]) != (int)i)
            abort(); /* stage names are unique, so each finds itself */
    for (size_t i = 0; i < cfg->n_managers; i++) {
        const struct config_manager *m = config_manager_find(cfg, cfg->managers[i].id);
        if (!m || strcmp(m->id, cfg->managers[i].id) != 0 || !m->team || !m->role)
            abort();
    }
    for (size_t i = 0; i < cfg->n_teams; i++)
        if (config_team_find(cfg, cfg->teams[i].name) != &cfg->teams[i] ||
            !config_calendar_of(cfg, cfg->teams[i].name))
            abort();
    if (!cfg->kafka_brokers || !cfg->n_kafka_topics || !cfg->redis_prefix || !cfg->time_zone)
        abort(); /* required or defaulted: the daemon dereferences them */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Exactly size bytes, not NUL-terminated, as config_load_file hands them over. */
    char *text = malloc(size ? size : 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    config_t *cfg = NULL;
    char err[4096];
    memset(err, 'X', sizeof err);
    int rc = config_load_string(text, size, &cfg, err, sizeof err);
    free(text);
    if (rc == 0) {
        if (!cfg)
            abort();
        check_loaded(cfg);
        config_free(cfg);
        return 0;
    }
    if (cfg || memchr(err, '\0', sizeof err) == NULL)
        abort();
    for (const char *line = err, *nl;; line = nl + 1) {
        if (line[0] != '$' && strncmp(line, "... and ", 8) != 0)
            abort(); /* an error line that does not say where */
        if (!(nl = strchr(line, '\n')))
            break;
    }
    return 0;
}
