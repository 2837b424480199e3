/* kpi-bench: the raw consume rate of a topic, the ceiling kpid's end-to-end rate is
 * compared with. A plain librdkafka consumer that assigns every partition from the
 * beginning and only counts messages until it has read `-n` of them.
 *
 *   kpi-bench -b BROKERS -t TOPIC -n COUNT
 * prints: raw_consume_msgs=N seconds=S rate=R */
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    const char *brokers = NULL, *topic = NULL;
    long long want = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "-b"))
            brokers = argv[i + 1];
        else if (!strcmp(argv[i], "-t"))
            topic = argv[i + 1];
        else if (!strcmp(argv[i], "-n"))
            want = atoll(argv[i + 1]);
    }
    if (!brokers || !topic || want <= 0) {
        fprintf(stderr, "usage: kpi-bench -b BROKERS -t TOPIC -n COUNT\n");
        return 2;
    }
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, err, sizeof err) ||
        rd_kafka_conf_set(conf, "group.id", "kpi-bench-raw", err, sizeof err) ||
        rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof err)) {
        fprintf(stderr, "kpi-bench: %s\n", err);
        return 2;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (!rk) {
        fprintf(stderr, "kpi-bench: %s\n", err);
        return 1;
    }
    rd_kafka_poll_set_consumer(rk);
    const rd_kafka_metadata_t *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    if (rd_kafka_metadata(rk, 0, rkt, &md, 10000) || md->topic_cnt != 1 ||
        md->topics[0].partition_cnt == 0) {
        fprintf(stderr, "kpi-bench: no metadata for topic %s\n", topic);
        return 1;
    }
    rd_kafka_topic_partition_list_t *l =
        rd_kafka_topic_partition_list_new(md->topics[0].partition_cnt);
    for (int p = 0; p < md->topics[0].partition_cnt; p++)
        rd_kafka_topic_partition_list_add(l, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);

    long long got = 0;
    unsigned long long bytes = 0;
    double start = 0, deadline = now_s() + 600;
    while (got < want && now_s() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 1000);
        if (!m)
            continue;
        if (!m->err) {
            if (got++ == 0)
                start = now_s();
            bytes += m->len;
        }
        rd_kafka_message_destroy(m);
    }
    double secs = now_s() - start;
    printf("raw_consume_msgs=%lld seconds=%.3f rate=%.0f mb_per_s=%.1f\n", got, secs,
           secs > 0 ? (double)(got - 1) / secs : 0, secs > 0 ? (double)bytes / secs / 1e6 : 0);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return got >= want ? 0 : 1;
}
