/* config: the JSON configuration file (comments allowed), every check reported with its
 * JSON path, defaults applied.
 *
 * A loaded configuration is a read-only value: the structure is public so modules read
 * fields directly (as redis reads server.*), and a reload builds a whole new one and swaps
 * it in. All strings and arrays belong to the config_t and die with config_free. */
#ifndef KPI_CONFIG_H
#define KPI_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONFIG_UNASSIGNED_TEAM "unassigned"
#define CONFIG_DEFAULT_ROLE "default"

struct config_team {
    char *name;
    char *time_zone;   /* NULL: the global time_zone */
    char *lead;        /* NULL when not set */
};

struct config_manager {
    char *id;
    char *team;        /* never NULL: CONFIG_UNASSIGNED_TEAM when not set */
    char *role;        /* never NULL: CONFIG_DEFAULT_ROLE when not set */
};

struct config_stage {
    char *name;
    double p;          /* win probability 0..1 */
    bool terminal;
};

struct config_kv {
    char *key;
    char *value;
};

struct config_index; /* private lookup tables */

typedef struct config {
    /* kafka */
    char *kafka_brokers;
    char **kafka_topics;
    size_t n_kafka_topics;
    char *kafka_group;
    char *kafka_dlq_topic;
    char *kafka_alerts_topic;
    struct config_kv *kafka_properties;  /* passed to librdkafka as-is */
    size_t n_kafka_properties;

    /* redis */
    char *redis_host;
    int redis_port;
    int redis_db;
    char *redis_user;                    /* NULL: no ACL user */
    char *redis_password;                /* NULL: no AUTH */
    char *redis_prefix;                  /* default "kpi" */
    int redis_timeout_ms;                /* connect and command timeout, default 5000 */

    char *time_zone;                     /* default zone; "UTC" when not set */
    struct config_team *teams;
    size_t n_teams;
    struct config_manager *managers;
    size_t n_managers;

    char **internal_domains;             /* lower-cased */
    size_t n_internal_domains;
    char **internal_phone_prefixes;
    size_t n_internal_phone_prefixes;

    int touch_min_call_s;                /* default 10 */
    int64_t dedup_window_s;              /* default 604800 */
    int64_t future_skew_s;               /* default 86400 */
    struct config_stage *stages;         /* default: the contract's seven stages */
    size_t n_stages;

    int batch_max_events;                /* flush after this many messages, default 20000 */
    int batch_max_ms;                    /* or after this long, default 100 */
    size_t max_message_bytes;            /* default 1 MiB */
    int64_t retention_day_s;             /* day keys live this long after the day, default 120 d */
    int64_t retention_week_s;            /* week keys, default 2 years (730 d) */
    char *log_level;                     /* "error", "warn", "info" (default), "debug" */

    struct config_index *index;
} config_t;

/* Load and validate. On success returns 0 and sets *out (caller owns it). On failure
 * returns -1 and writes every error found, one per line, each starting with its JSON path
 * ("$.kafka.topics[1]: must be a non-empty string"), truncated to errlen. */
int config_load_file(const char *path, config_t **out, char *err, size_t errlen);
int config_load_string(const char *text, size_t len, config_t **out, char *err, size_t errlen);
void config_free(config_t *cfg);

/* NULL when the manager is not configured (team "unassigned", role "default"). */
const struct config_manager *config_manager_find(const config_t *cfg, const char *id);
/* NULL when no such team is configured. */
const struct config_team *config_team_find(const config_t *cfg, const char *name);

/* Index of the stage in cfg->stages, or -1. */
int config_stage_find(const config_t *cfg, const char *name);
/* The stage names in order (n_stages of them), ready for event_rules_t.stages; owned by cfg. */
const char *const *config_stage_names(const config_t *cfg);

#endif
