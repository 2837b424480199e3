/* kpi-devbroker: a throw-away Kafka cluster for development and tests, hosting
 * librdkafka's built-in mock cluster (rdkafka_mock.h) on loopback.
 *
 *   kpi-devbroker [-b N] [-t topic:partitions]... [-p FILE] [-g group]... [-q] [--strict]
 *
 * First stdout line: "bootstrap=<host:port,...>" (flushed). Then stdin is a control
 * channel, one command per line, each answered with "ok" or "error <reason>" (flushed):
 *   down <broker>   up <broker>   leader <topic> <partition> <broker>   rtt <broker> <ms>
 *   coordinator <group> <broker>   (pins the group's coordinator; else the mock hashes
 *                                   the group id, so a test cannot know which broker it is)
 *   error <ApiKey> <count> <errcode>      (ApiKey/errcode by number or name: Produce,
 *                                          NOT_LEADER_FOR_PARTITION, ...)
 *   create <topic> <partitions>
 *   watermarks <topic>   (one "watermark <topic> <partition> <low> <high>" line per
 *                         partition, then "ok")
 *   quit
 * EOF on stdin is not a stop request (tests start it with stdin=DEVNULL); SIGTERM/SIGINT
 * and "quit" stop it with exit 0.
 *
 * KNOWN LIMIT OF THE MOCK (librdkafka 2.0.2, src/rdkafka_mock.c, rd_kafka_mock_msgset_new
 * called from rd_kafka_mock_partition_log_append): every partition keeps at most 5 MiB of
 * record-batch bytes or 100,000 record batches, whichever comes first, and silently
 * drops its oldest batches beyond that; the partition's log start offset moves forward.
 * Nothing reports it: a consumer that was behind simply never sees the dropped messages,
 * so a test would blame the daemon for lost counts. Since the mock never deletes records
 * for any other reason, a log start offset > 0 always means such a loss, and a monitor
 * thread here polls every partition's low watermark every 500 ms and says so loudly
 * (with --strict it also exits 3, so a test fails at the cause, not at a wrong count).
 * With -g GROUP (repeatable) dropping what every such group has already committed is
 * not reported: that is how a producer paced to the consumer streams more than fits.
 * Measured with kpi-gen's events (~165 bytes of JSON each, zstd level 1): ~33 bytes per
 * event stored, so ~157,000 events per partition (~185,000 at zstd level 6).
 * Mitigations the project uses: producers compress (zstd) and send large batches
 * (linger.ms 50-100, batch.num.messages 10000, batch.size ~1 MB), so the 5 MiB hold many
 * messages and the batch count stays far below 100,000; topics get enough partitions
 * for the volume, with headroom because keyed partitioning is uneven; and kpi-gen can
 * pace itself to the consumer group (--lag-max). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#define MONITOR_INTERVAL_MS 500
#define LINE_MAX_BYTES 1024

static volatile sig_atomic_t g_stop;
static volatile sig_atomic_t g_exit_code;
static bool g_quiet;
static bool g_strict;

static rd_kafka_mock_cluster_t *g_mcluster;
static rd_kafka_t *g_query_rk; /* client of the mock, for watermarks (thread-safe API) */
#define MAX_GROUPS 16
static rd_kafka_t *g_group_rk[MAX_GROUPS]; /* -g: one handle per watched consumer group */
static int g_n_groups;

static void on_signal(int sig) {
    (void)sig;
    g_stop = 1;
}

static void info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void info(const char *fmt, ...) {
    va_list ap;
    if (g_quiet)
        return;
    va_start(ap, fmt);
    fputs("devbroker: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void reply(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void reply(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    fflush(stdout);
}

static int parse_long(const char *s, long min, long max, long *out) {
    char *end;
    long v;
    if (!s || !*s)
        return -1;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static bool topic_name_ok(const char *t) {
    size_t n = strlen(t);
    if (n == 0 || n > 249)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = t[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

static int create_topic(const char *topic, long partitions, int brokers, char *err, size_t errlen) {
    /* Replicas only matter for "leader": a partition can move only to a replica. */
    int rf = brokers < 3 ? brokers : 3;
    rd_kafka_resp_err_t e;
    if (!topic_name_ok(topic)) {
        snprintf(err, errlen, "bad topic name '%s'", topic);
        return -1;
    }
    e = rd_kafka_mock_topic_create(g_mcluster, topic, (int)partitions, rf);
    if (e) {
        snprintf(err, errlen, "%s", rd_kafka_err2name(e));
        return -1;
    }
    return 0;
}

/* ---- data-loss monitor -------------------------------------------------------------- */

struct reported {
    char **names; /* "topic\0" + partition, owned here */
    int32_t *partitions;
    size_t n, cap;
};

static bool reported_has(const struct reported *r, const char *topic, int32_t p) {
    for (size_t i = 0; i < r->n; i++)
        if (r->partitions[i] == p && strcmp(r->names[i], topic) == 0)
            return true;
    return false;
}

static void reported_add(struct reported *r, const char *topic, int32_t p) {
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        char **names = realloc(r->names, cap * sizeof(*names));
        if (!names)
            return; /* worst case the line is printed again next round */
        r->names = names;
        int32_t *parts = realloc(r->partitions, cap * sizeof(*parts));
        if (!parts)
            return;
        r->partitions = parts;
        r->cap = cap;
    }
    char *dup = strdup(topic);
    if (!dup)
        return;
    r->names[r->n] = dup;
    r->partitions[r->n] = p;
    r->n++;
}

static void reported_free(struct reported *r) {
    for (size_t i = 0; i < r->n; i++)
        free(r->names[i]);
    free(r->names);
    free(r->partitions);
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR && !g_stop)
        ;
}

/* With -g: the lowest offset of (topic, p) some watched group still needs, i.e. the
 * smallest committed offset (0 for a group that never committed there). INT64_MAX when
 * the committed offsets cannot be read now (so nothing is reported this round). */
static int64_t groups_need(const char *topic, int32_t p) {
    int64_t need = INT64_MAX;
    for (int g = 0; g < g_n_groups; g++) {
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, topic, p);
        if (rd_kafka_committed(g_group_rk[g], l, 2000) == RD_KAFKA_RESP_ERR_NO_ERROR &&
            !l->elems[0].err) {
            int64_t c = l->elems[0].offset < 0 ? 0 : l->elems[0].offset;
            if (c < need)
                need = c;
        }
        rd_kafka_topic_partition_list_destroy(l);
    }
    return need;
}

static void monitor_round(struct reported *rep) {
    const struct rd_kafka_metadata *md = NULL;
    /* All topics, so auto-created ones (DLQ, alerts) are watched too. */
    if (rd_kafka_metadata(g_query_rk, 1, NULL, &md, 2000) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return;
    for (int t = 0; t < md->topic_cnt && !g_stop; t++) {
        const rd_kafka_metadata_topic_t *mt = &md->topics[t];
        for (int i = 0; i < mt->partition_cnt && !g_stop; i++) {
            int64_t lo = 0, hi = 0, need = 0;
            int32_t p = mt->partitions[i].id;
            if (rd_kafka_query_watermark_offsets(g_query_rk, mt->topic, p, &lo, &hi, 1000))
                continue; /* broker down or moving: next round */
            if (lo <= 0 || reported_has(rep, mt->topic, p))
                continue;
            /* Dropping what every watched group has committed is no loss: that is how
             * a paced producer streams more than the mock holds. */
            if (g_n_groups > 0 && lo <= (need = groups_need(mt->topic, p)))
                continue;
            fprintf(stderr,
                    "devbroker: DATA LOST: %s [%" PRId32 "] log start offset moved to %" PRId64
                    " (mock keeps 5 MiB / 100000 batches per partition; use more partitions, "
                    "bigger compressed batches, or a paced producer)",
                    mt->topic, p, lo);
            if (g_n_groups > 0)
                fprintf(stderr, "; a watched group had committed only %" PRId64, need);
            fputc('\n', stderr);
            fflush(stderr);
            reported_add(rep, mt->topic, p);
            if (g_strict) {
                g_exit_code = 3;
                g_stop = 1;
            }
        }
    }
    rd_kafka_metadata_destroy(md);
}

static void *monitor_main(void *arg) {
    struct reported rep = {0};
    (void)arg;
    while (!g_stop) {
        monitor_round(&rep);
        sleep_ms(MONITOR_INTERVAL_MS);
    }
    reported_free(&rep);
    return NULL;
}

/* ---- control channel ------------------------------------------------------------------ */

static const struct {
    const char *name;
    int16_t key;
} api_keys[] = {
    {"Produce", 0},          {"Fetch", 1},          {"ListOffsets", 2},
    {"Metadata", 3},         {"OffsetCommit", 8},   {"OffsetFetch", 9},
    {"FindCoordinator", 10}, {"JoinGroup", 11},     {"Heartbeat", 12},
    {"LeaveGroup", 13},      {"SyncGroup", 14},     {"DescribeGroups", 15},
    {"ListGroups", 16},      {"ApiVersions", 18},   {"CreateTopics", 19},
    {"InitProducerId", 22},  {"AddPartitionsToTxn", 24}, {"AddOffsetsToTxn", 25},
    {"EndTxn", 26},          {"TxnOffsetCommit", 28},
};

static int parse_api_key(const char *s, int16_t *out) {
    long v;
    if (parse_long(s, 0, 100, &v) == 0) {
        *out = (int16_t)v;
        return 0;
    }
    for (size_t i = 0; i < sizeof(api_keys) / sizeof(api_keys[0]); i++)
        if (strcasecmp(s, api_keys[i].name) == 0) {
            *out = api_keys[i].key;
            return 0;
        }
    return -1;
}

static int parse_err_code(const char *s, rd_kafka_resp_err_t *out) {
    const struct rd_kafka_err_desc *descs;
    size_t n;
    long v;
    if (parse_long(s, -200, 1000, &v) == 0) {
        *out = (rd_kafka_resp_err_t)v;
        return 0;
    }
    if (strncasecmp(s, "ERR_", 4) == 0)
        s += 4;
    rd_kafka_get_err_descs(&descs, &n);
    for (size_t i = 0; i < n; i++)
        if (descs[i].name && strcasecmp(descs[i].name, s) == 0) {
            *out = descs[i].code;
            return 0;
        }
    return -1;
}

static void cmd_watermarks(const char *topic) {
    const struct rd_kafka_metadata *md = NULL;
    const rd_kafka_metadata_topic_t *mt = NULL;
    rd_kafka_resp_err_t e;
    /* Asking for all topics: a request naming the topic would auto-create it. */
    e = rd_kafka_metadata(g_query_rk, 1, NULL, &md, 5000);
    if (e) {
        reply("error %s", rd_kafka_err2name(e));
        return;
    }
    for (int t = 0; t < md->topic_cnt && !mt; t++)
        if (strcmp(md->topics[t].topic, topic) == 0)
            mt = &md->topics[t];
    if (!mt || mt->err) {
        reply("error %s", mt ? rd_kafka_err2name(mt->err) : "no such topic");
        rd_kafka_metadata_destroy(md);
        return;
    }
    for (int32_t p = 0; p < mt->partition_cnt; p++) {
        int64_t lo = -1, hi = -1;
        e = rd_kafka_query_watermark_offsets(g_query_rk, topic, p, &lo, &hi, 5000);
        if (e) {
            reply("error partition %" PRId32 ": %s", p, rd_kafka_err2name(e));
            rd_kafka_metadata_destroy(md);
            return;
        }
        printf("watermark %s %" PRId32 " %" PRId64 " %" PRId64 "\n", topic, p, lo, hi);
    }
    rd_kafka_metadata_destroy(md);
    reply("ok");
}

/* Executes one command line (modified in place). */
static void run_command(char *line, int brokers) {
    char *argv[5];
    int argc = 0;
    char *save = NULL;
    char err[256];
    long a, b, c;
    rd_kafka_resp_err_t e;

    for (char *tok = strtok_r(line, " \t\r", &save); tok && argc < 5;
         tok = strtok_r(NULL, " \t\r", &save))
        argv[argc++] = tok;
    if (argc == 0)
        return; /* blank line: no answer, so "echo | devbroker" stays quiet */

    const char *cmd = argv[0];
    if (strcmp(cmd, "quit") == 0 && argc == 1) {
        reply("ok");
        g_stop = 1;
    } else if ((strcmp(cmd, "down") == 0 || strcmp(cmd, "up") == 0) && argc == 2) {
        if (parse_long(argv[1], 0, INT32_MAX, &a)) {
            reply("error bad broker id");
            return;
        }
        e = cmd[0] == 'd' ? rd_kafka_mock_broker_set_down(g_mcluster, (int32_t)a)
                          : rd_kafka_mock_broker_set_up(g_mcluster, (int32_t)a);
        if (e)
            reply("error %s", rd_kafka_err2name(e));
        else
            reply("ok");
    } else if (strcmp(cmd, "leader") == 0 && argc == 4) {
        if (parse_long(argv[2], 0, INT32_MAX, &a) || parse_long(argv[3], -1, INT32_MAX, &b)) {
            reply("error bad partition or broker id");
            return;
        }
        e = rd_kafka_mock_partition_set_leader(g_mcluster, argv[1], (int32_t)a, (int32_t)b);
        if (e)
            reply("error %s", rd_kafka_err2name(e));
        else
            reply("ok");
    } else if (strcmp(cmd, "coordinator") == 0 && argc == 3) {
        if (parse_long(argv[2], 0, INT32_MAX, &a)) {
            reply("error bad broker id");
            return;
        }
        e = rd_kafka_mock_coordinator_set(g_mcluster, "group", argv[1], (int32_t)a);
        if (e)
            reply("error %s", rd_kafka_err2name(e));
        else
            reply("ok");
    } else if (strcmp(cmd, "rtt") == 0 && argc == 3) {
        if (parse_long(argv[1], 0, INT32_MAX, &a) || parse_long(argv[2], 0, 3600000, &b)) {
            reply("error bad broker id or ms");
            return;
        }
        e = rd_kafka_mock_broker_set_rtt(g_mcluster, (int32_t)a, (int)b);
        if (e)
            reply("error %s", rd_kafka_err2name(e));
        else
            reply("ok");
    } else if (strcmp(cmd, "error") == 0 && argc == 4) {
        int16_t key;
        rd_kafka_resp_err_t code;
        if (parse_api_key(argv[1], &key) || parse_long(argv[2], 1, 100000, &c) ||
            parse_err_code(argv[3], &code)) {
            reply("error usage: error <ApiKey> <count 1..100000> <errcode>");
            return;
        }
        rd_kafka_resp_err_t *codes = malloc((size_t)c * sizeof(*codes));
        if (!codes) {
            reply("error out of memory");
            return;
        }
        for (long i = 0; i < c; i++)
            codes[i] = code;
        rd_kafka_mock_push_request_errors_array(g_mcluster, key, (size_t)c, codes);
        free(codes);
        reply("ok");
    } else if (strcmp(cmd, "create") == 0 && argc == 3) {
        if (parse_long(argv[2], 1, 100000, &a)) {
            reply("error bad partition count");
            return;
        }
        if (create_topic(argv[1], a, brokers, err, sizeof(err)))
            reply("error %s", err);
        else
            reply("ok");
    } else if (strcmp(cmd, "watermarks") == 0 && argc == 2) {
        cmd_watermarks(argv[1]);
    } else {
        reply("error unknown command or wrong arguments: %s", cmd);
    }
}

/* Reads whatever stdin has, runs complete lines. Returns -1 at EOF or error. */
static int read_commands(char *buf, size_t *len, int brokers) {
    ssize_t n = read(STDIN_FILENO, buf + *len, LINE_MAX_BYTES - *len);
    if (n < 0)
        return errno == EINTR || errno == EAGAIN ? 0 : -1;
    if (n == 0)
        return -1;
    *len += (size_t)n;
    for (;;) {
        char *nl = memchr(buf, '\n', *len);
        if (!nl) {
            if (*len == LINE_MAX_BYTES) { /* a line that long is no command */
                reply("error line too long");
                *len = 0;
            }
            return 0;
        }
        *nl = '\0';
        run_command(buf, brokers);
        size_t used = (size_t)(nl + 1 - buf);
        memmove(buf, nl + 1, *len - used);
        *len -= used;
    }
}

/* ---- setup ------------------------------------------------------------------------------ */

static int write_file_atomic(const char *path, const char *text) {
    char tmp[PATH_MAX];
    FILE *f;
    if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof(tmp))
        return -1;
    f = fopen(tmp, "w");
    if (!f)
        return -1;
    if (fprintf(f, "%s\n", text) < 0 || fflush(f) || fsync(fileno(f))) {
        fclose(f);
        unlink(tmp);
        return -1;
    }
    if (fclose(f) || rename(tmp, path)) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* A consumer handle without a group: it only asks questions (metadata, watermarks). */
static rd_kafka_t *new_handle(const char *bootstrap, const char *group, const char *log_level) {
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *rk;
    if ((bootstrap && rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, err, sizeof(err))) ||
        rd_kafka_conf_set(conf, "allow.auto.create.topics", "false", err, sizeof(err)) ||
        (group && rd_kafka_conf_set(conf, "group.id", group, err, sizeof(err))) ||
        rd_kafka_conf_set(conf, "log_level", log_level, err, sizeof(err)) ||
        rd_kafka_conf_set(conf, "client.id", "kpi-devbroker", err, sizeof(err))) {
        fprintf(stderr, "devbroker: %s\n", err);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err)); /* takes conf on success */
    if (!rk) {
        fprintf(stderr, "devbroker: %s\n", err);
        rd_kafka_conf_destroy(conf);
    }
    return rk;
}

static void usage(FILE *f) {
    fprintf(f, "usage: kpi-devbroker [-b brokers] [-t topic:partitions]... [-p bootstrap_file]\n"
               "                     [-g group]... [-q] [--strict]\n");
}

/* Parses "topic[:partitions]" into name (size 256) and *parts. */
static int parse_topic_arg(const char *arg, char *name, long *parts) {
    const char *colon = strrchr(arg, ':');
    size_t nlen = colon ? (size_t)(colon - arg) : strlen(arg);
    *parts = 4; /* the mock's own default for auto-created topics */
    if (nlen >= 256 || (colon && parse_long(colon + 1, 1, 100000, parts)))
        return -1;
    memcpy(name, arg, nlen);
    name[nlen] = '\0';
    return 0;
}

int main(int argc, char **argv) {
    long brokers = 1;
    const char *pidfile = NULL;
    const char *topics[256], *groups[MAX_GROUPS];
    int n_topics = 0, rc = 1;
    char err[512];
    char line[LINE_MAX_BYTES];
    size_t line_len = 0;
    bool stdin_open = true;
    pthread_t monitor;
    struct sigaction sa;
    rd_kafka_t *host = NULL;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-b") == 0 && i + 1 < argc) {
            if (parse_long(argv[++i], 1, 64, &brokers)) {
                fprintf(stderr, "devbroker: -b wants 1..64\n");
                return 2;
            }
        } else if (strcmp(a, "-t") == 0 && i + 1 < argc &&
                   n_topics < (int)(sizeof(topics) / sizeof(topics[0]))) {
            topics[n_topics++] = argv[++i];
        } else if (strcmp(a, "-g") == 0 && i + 1 < argc && g_n_groups < MAX_GROUPS) {
            groups[g_n_groups++] = argv[++i];
        } else if (strcmp(a, "-p") == 0 && i + 1 < argc) {
            pidfile = argv[++i];
        } else if (strcmp(a, "-q") == 0) {
            g_quiet = true;
        } else if (strcmp(a, "--strict") == 0) {
            g_strict = true;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal; /* no SA_RESTART: poll() must wake up */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* The mock cluster lives in (and logs through) a client handle of its own; log level
     * 4 hides the notice that this handle has no bootstrap servers. */
    host = new_handle(NULL, NULL, g_quiet ? "3" : "4");
    if (!host)
        return 1;
    g_mcluster = rd_kafka_mock_cluster_new(host, (int)brokers);
    if (!g_mcluster) {
        fprintf(stderr, "devbroker: cannot create mock cluster\n");
        goto out;
    }
    const char *bootstrap = rd_kafka_mock_cluster_bootstraps(g_mcluster);

    for (int i = 0; i < n_topics; i++) {
        char name[256];
        long parts;
        if (parse_topic_arg(topics[i], name, &parts)) {
            fprintf(stderr, "devbroker: bad -t '%s' (want topic:partitions)\n", topics[i]);
            rc = 2;
            goto out;
        }
        if (create_topic(name, parts, (int)brokers, err, sizeof(err))) {
            fprintf(stderr, "devbroker: topic %s: %s\n", name, err);
            rc = 2;
            goto out;
        }
        info("topic %s: %ld partitions", name, parts);
    }

    /* Log level 2: a downed broker must not flood stderr with connection errors. */
    if (!(g_query_rk = new_handle(bootstrap, NULL, "2")))
        goto out;
    for (int i = 0; i < g_n_groups; i++)
        if (!(g_group_rk[i] = new_handle(bootstrap, groups[i], "2")))
            goto out;

    if (pidfile && write_file_atomic(pidfile, bootstrap)) {
        fprintf(stderr, "devbroker: cannot write %s: %s\n", pidfile, strerror(errno));
        goto out;
    }
    printf("bootstrap=%s\n", bootstrap);
    fflush(stdout);
    info("%ld broker(s) at %s", brokers, bootstrap);

    if (pthread_create(&monitor, NULL, monitor_main, NULL)) {
        fprintf(stderr, "devbroker: cannot start monitor thread\n");
        goto out;
    }
    while (!g_stop) {
        struct pollfd pfd = {STDIN_FILENO, POLLIN, 0};
        int n = poll(&pfd, stdin_open ? 1 : 0, 200);
        if (n > 0 && (pfd.revents & (POLLIN | POLLHUP | POLLERR))) {
            if (read_commands(line, &line_len, (int)brokers) < 0)
                stdin_open = false; /* keep serving until signalled */
        } else if (n > 0 && (pfd.revents & POLLNVAL)) {
            stdin_open = false;
        }
    }
    info("stopping");
    g_stop = 1;
    pthread_join(monitor, NULL);
    rc = g_exit_code;
out:
    for (int i = 0; i < g_n_groups; i++)
        if (g_group_rk[i])
            rd_kafka_destroy(g_group_rk[i]);
    if (g_query_rk)
        rd_kafka_destroy(g_query_rk);
    if (g_mcluster)
        rd_kafka_mock_cluster_destroy(g_mcluster);
    rd_kafka_destroy(host);
    return rc;
}
