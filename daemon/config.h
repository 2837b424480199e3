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

#include "event.h"
#include "period.h"

#define CONFIG_UNASSIGNED_TEAM "unassigned"
#define CONFIG_DEFAULT_ROLE "default"

/* Working time (section 7 "calendar"): the global one, or a team's override. */
struct config_calendar {
    unsigned work_days;     /* bit w set: weekday w works (1 = Monday .. 7 = Sunday) */
    int start_min, end_min; /* work_hours in local minutes, 0 <= start < end <= 1440 */
    int64_t *holidays;      /* local dates as days since 1970-01-01, ascending, unique */
    size_t n_holidays;
};

struct config_team {
    char *name;
    char *time_zone;   /* NULL: the global time_zone */
    char *lead;        /* NULL when not set */
    bool has_calendar; /* teams.<t>.calendar given: calendar replaces the global one */
    struct config_calendar calendar;
};

/* One target: metric (a counter field name: "touches", "stage:proposal",
 * "revenue_won_cents") for one period kind. */
struct config_target {
    char *metric;
    enum period_kind period;
    int64_t value;     /* >= 0 */
};

/* targets.roles.<name>, targets.teams.<name>, targets.managers.<name> */
struct config_target_set {
    char *name;
    struct config_target *targets;
    size_t n_targets;
};

struct config_plan_step {
    char *metric;
    double factor;     /* need (by_per false) or per (by_per true); unused when observed */
    bool by_per;
    bool observed;     /* per: "observed" */
};

struct config_plan {
    char *metric;      /* the lagging metric planned ("deals_won") */
    enum period_kind period;
    double target;     /* per manager, >= 0 */
    char *role, *team, *manager; /* NULL: any; a plan applies where all given ones match */
    struct config_plan_step *chain;
    size_t n_chain;
};

struct config_score_weight {
    char *metric;
    double weight;
};

struct config_score_band {
    double threshold;  /* percent */
    bool above;        /* "above" (strictly greater) rather than "from" (at least) */
    double coef;
};

enum config_rule_kind { RULE_THRESHOLD, RULE_INACTIVITY };

struct config_rule {
    char *name;                 /* unique */
    enum config_rule_kind kind;
    char *metric;               /* inactivity: an activity counter ("touches", "calls") */
    enum period_kind period;    /* threshold rules */
    int warn_pct, critical_pct; /* threshold: default 80 and 50, critical <= warn */
    double min_elapsed_pct;     /* threshold: default 10 */
    int64_t escalate_after_s;   /* 0: never escalated */
    int64_t idle_s;             /* inactivity: working seconds without activity, > 0 */
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
    char *kafka_group;                   /* also names the offsets and fence keys */
    char *kafka_group_id;                /* not in the file: Kafka group.id when it differs
                                          * from kafka_group (kpid --rebuild); NULL: same */
    char *kafka_dlq_topic;
    char *kafka_alerts_topic;
    struct config_kv *kafka_properties;  /* passed to librdkafka as-is, plus property_files */
    size_t n_kafka_properties;
    struct config_kv *kafka_property_files; /* property -> file holding its value (secrets) */
    size_t n_kafka_property_files;

    /* redis */
    char *redis_host;
    int redis_port;
    int redis_db;
    char *redis_user;                    /* NULL: no ACL user */
    char *redis_password;                /* NULL: no AUTH; from password_file when given */
    char *redis_password_file;           /* NULL: none */
    char *redis_prefix;                  /* default "kpi" */
    int redis_timeout_ms;                /* connect and command timeout, default 5000 */
    /* Redis Sentinel: when set, the primary of redis_master_name is asked of these
     * ("host:port", tried in order) at every connect, and host/port are not used. */
    char **redis_sentinels;
    size_t n_redis_sentinels;
    char *redis_master_name;
    char *redis_sentinel_password;       /* NULL: sentinels without AUTH */
    char *redis_sentinel_password_file;  /* NULL: none */

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
    char *metrics_listen;                /* "127.0.0.1:9464"; NULL: no HTTP endpoint */

    /* section 7: targets, pacing, score, alerts */
    struct config_calendar calendar;     /* default: mon-fri 09:00-18:00, no holidays */
    struct config_target *targets_default;
    size_t n_targets_default;
    struct config_target_set *targets_roles, *targets_teams, *targets_managers;
    size_t n_targets_roles, n_targets_teams, n_targets_managers;
    struct config_plan *plans;
    size_t n_plans;
    bool has_score;                      /* kpi_score given */
    enum period_kind score_period;
    double score_budget;
    struct config_score_weight *score_weights;
    size_t n_score_weights;
    struct config_score_band *score_bands; /* as given (any order) */
    size_t n_score_bands;
    bool alerts_event_clock;             /* "clock": "event" (default "wall") */
    int64_t alerts_eval_interval_s;      /* default 60 */
    int64_t alerts_repeat_s;             /* default 14400; 0: never repeated */
    int64_t alerts_stream_maxlen;        /* kpi:alerts MAXLEN ~, default 100000 */
    struct config_rule *rules;
    size_t n_rules;
    char *webhook_url;                   /* NULL: no webhook */
    int webhook_timeout_ms;              /* default 2000 */

    struct config_index *index;
} config_t;

/* Load and validate. On success returns 0 and sets *out (caller owns it). On failure
 * returns -1 and writes every error found, one per line, each starting with its JSON path
 * ("$.kafka.topics[1]: must be a non-empty string"), truncated to errlen. */
int config_load_file(const char *path, config_t **out, char *err, size_t errlen);
int config_load_string(const char *text, size_t len, config_t **out, char *err, size_t errlen);
/* Same redis.sentinels and redis.master_name (a change needs a restart). */
bool config_same_sentinels(const config_t *a, const config_t *b);
void config_free(config_t *cfg);

/* Returns 1 and writes a warning to msg when the file at path is readable by every user
 * (mode o+r) and cfg holds a secret given inline (redis.password, or a kafka.properties
 * key naming a password, secret, sasl.jaas or ssl.key value) rather than through a
 * password_file/property_files file; 0 otherwise. Warned, not refused: refusing would
 * stop setups that ran until now at their next restart or reload. */
int config_check_secret_exposure(const char *path, const config_t *cfg, char *msg, size_t msglen);

/* NULL when the manager is not configured (team "unassigned", role "default"). */
const struct config_manager *config_manager_find(const config_t *cfg, const char *id);
/* NULL when no such team is configured. */
const struct config_team *config_team_find(const config_t *cfg, const char *name);

/* The calendar of a team (its own, or the global one); the global one for NULL or an
 * unknown team. */
const struct config_calendar *config_calendar_of(const config_t *cfg, const char *team);

/* True when the metric names a counter field of contract section 2: an activity counter
 * ("touches"), "deals_won", "deals_lost", "revenue_won_cents", "cycle_seconds_won", or
 * "stage:<name>" of a configured stage. Targets, plans, score weights and rules use these. */
bool config_metric_known(const config_t *cfg, const char *metric);

/* Index of the stage in cfg->stages, or -1. */
int config_stage_find(const config_t *cfg, const char *name);
/* The stage names in order (n_stages of them), ready for event_rules_t.stages; owned by cfg. */
const char *const *config_stage_names(const config_t *cfg);
/* The validation rules of cfg, borrowing its strings: valid while cfg lives. */
event_rules_t config_event_rules(const config_t *cfg);

#endif
