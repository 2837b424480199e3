/* What each event counts (contract section 2) and how a batch sums per (scope, period). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fixtures.h"

#include "agg.h"
#include "batch.h"
#include "dedup.h"

static int64_t d[COUNTER_ACTIVITY_COUNT];

static event_t call(enum event_direction dir, enum call_status st, int dur, bool internal)
{
    event_t e;
    memset(&e, 0, sizeof e);
    e.type = EVENT_CALL;
    e.direction = dir;
    e.call_status = st;
    e.duration_s = dur;
    e.internal = internal;
    return e;
}

/* Asserts exactly the listed counters are non-zero with the given values. */
static void expect(const char *spec)
{
    int64_t want[COUNTER_ACTIVITY_COUNT] = {0};
    char buf[256];
    snprintf(buf, sizeof buf, "%s", spec);
    for (char *tok = strtok(buf, " "); tok; tok = strtok(NULL, " ")) {
        char *eq = strchr(tok, '=');
        assert_non_null(eq);
        *eq = '\0';
        int found = 0;
        for (int c = 0; c < COUNTER_ACTIVITY_COUNT; c++)
            if (!strcmp(agg_counter_name((enum counter)c), tok)) {
                want[c] = atoll(eq + 1);
                found = 1;
            }
        assert_true(found);
    }
    for (int c = 0; c < COUNTER_ACTIVITY_COUNT; c++) {
        if (want[c] != d[c])
            fail_msg("%s: want %lld got %lld", agg_counter_name((enum counter)c),
                     (long long)want[c], (long long)d[c]);
    }
}

static void test_calls(void **state)
{
    (void)state;
    event_t e = call(DIRECTION_OUTBOUND, CALL_CONNECTED, 10, false);
    agg_event_deltas(&e, 10, d);
    expect("calls=1 calls_connected=1 call_seconds=10 touches=1");
    e.duration_s = 9; /* one second short of the touch threshold */
    agg_event_deltas(&e, 10, d);
    expect("calls=1 calls_connected=1 call_seconds=9");
    e = call(DIRECTION_OUTBOUND, CALL_NO_ANSWER, 0, false);
    agg_event_deltas(&e, 10, d);
    expect("calls=1");
    e = call(DIRECTION_OUTBOUND, CALL_BUSY, 25, false); /* seconds count even when not connected */
    agg_event_deltas(&e, 10, d);
    expect("calls=1 call_seconds=25");
    e = call(DIRECTION_INBOUND, CALL_CONNECTED, 300, false);
    agg_event_deltas(&e, 10, d);
    expect("calls_in=1");
    e = call(DIRECTION_OUTBOUND, CALL_CONNECTED, 300, true);
    agg_event_deltas(&e, 10, d);
    expect("internal_filtered=1");
    e = call(DIRECTION_OUTBOUND, CALL_CONNECTED, 0, false);
    agg_event_deltas(&e, 0, d); /* threshold 0: any connected call is a touch */
    expect("calls=1 calls_connected=1 touches=1");
}

static void test_emails_and_meetings(void **state)
{
    (void)state;
    event_t e;
    memset(&e, 0, sizeof e);
    e.type = EVENT_EMAIL;
    e.direction = DIRECTION_OUTBOUND;
    agg_event_deltas(&e, 10, d);
    expect("emails=1 touches=1");
    e.direction = DIRECTION_INBOUND;
    agg_event_deltas(&e, 10, d);
    expect("emails_in=1");
    e.internal = true;
    agg_event_deltas(&e, 10, d);
    expect("internal_filtered=1");

    memset(&e, 0, sizeof e);
    e.type = EVENT_MEETING;
    e.meeting_status = MEETING_SCHEDULED;
    e.meeting_first = true;
    e.next_step = true;
    agg_event_deltas(&e, 10, d);
    expect("meetings_scheduled=1"); /* first/next_step only count for held meetings */
    e.meeting_status = MEETING_CANCELLED;
    agg_event_deltas(&e, 10, d);
    expect("meetings_cancelled=1");
    e.meeting_status = MEETING_NO_SHOW;
    agg_event_deltas(&e, 10, d);
    expect("meetings_no_show=1");
    e.meeting_status = MEETING_HELD;
    agg_event_deltas(&e, 10, d);
    expect("meetings_held=1 touches=1 meetings_first=1 meetings_next_step=1");
    e.next_step = false;
    agg_event_deltas(&e, 10, d);
    expect("meetings_held=1 touches=1 meetings_first=1");
    e.meeting_first = false;
    e.next_step = true; /* next_step of a follow-up meeting is not counted */
    agg_event_deltas(&e, 10, d);
    expect("meetings_held=1 touches=1");
    e.internal = true;
    agg_event_deltas(&e, 10, d);
    expect("internal_filtered=1");

    memset(&e, 0, sizeof e);
    e.type = EVENT_DEAL_STAGE;
    agg_event_deltas(&e, 10, d);
    expect("");
}

static void test_buckets_sum(void **state)
{
    (void)state;
    agg_t *agg = agg_new(COUNTER_ACTIVITY_COUNT);
    assert_non_null(agg);
    period_set_t mon = fixture_periods("d:2026-11-16", "w:2026-W47", 1000);
    period_set_t tue = fixture_periods("d:2026-11-17", "w:2026-W47", 2000);
    int64_t one[COUNTER_ACTIVITY_COUNT] = {[COUNTER_CALLS] = 1, [COUNTER_CALL_SECONDS] = 30};
    for (int round = 0; round < 2; round++) { /* the second round checks reuse after reset */
        assert_int_equal(agg_add(agg, SCOPE_MANAGER, "ivanov", &mon, one, COUNTER_ACTIVITY_COUNT), 0);
        assert_int_equal(agg_add(agg, SCOPE_MANAGER, "ivanov", &mon, one, COUNTER_ACTIVITY_COUNT), 0);
        assert_int_equal(agg_add(agg, SCOPE_MANAGER, "ivanov", &tue, one, COUNTER_ACTIVITY_COUNT), 0);
        assert_int_equal(agg_add(agg, SCOPE_TEAM, "ivanov", &mon, one, COUNTER_ACTIVITY_COUNT), 0);
        /* mgr: 2 days + 1 week + 1 month + 1 quarter; team: 4 */
        assert_int_equal(agg_bucket_count(agg), 9);
        int seen = 0;
        for (size_t i = 0; i < agg_bucket_count(agg); i++) {
            const agg_bucket_t *b = agg_bucket_at(agg, i);
            if (b->kind == SCOPE_MANAGER && !strcmp(b->period_id, "d:2026-11-16")) {
                assert_int_equal(b->values[COUNTER_CALLS], 2);
                assert_int_equal(b->values[COUNTER_CALL_SECONDS], 60);
                assert_int_equal(b->period_end_ms, 1000);
                seen++;
            }
            if (b->kind == SCOPE_MANAGER && !strcmp(b->period_id, "w:2026-W47")) {
                assert_int_equal(b->values[COUNTER_CALLS], 3);
                seen++;
            }
            if (b->kind == SCOPE_TEAM && !strcmp(b->period_id, "w:2026-W47")) {
                assert_int_equal(b->values[COUNTER_CALLS], 1);
                seen++;
            }
        }
        assert_int_equal(seen, 3);
        agg_reset(agg);
        assert_int_equal(agg_bucket_count(agg), 0);
    }
    agg_free(agg);
}

static void test_many_buckets(void **state)
{
    (void)state;
    /* Enough scopes to force the table to grow several times; every sum stays exact. */
    agg_t *agg = agg_new(COUNTER_ACTIVITY_COUNT + 3);
    period_set_t p = fixture_periods("d:2026-11-16", "w:2026-W47", 0);
    int64_t one[COUNTER_ACTIVITY_COUNT] = {[COUNTER_TOUCHES] = 1};
    char name[32];
    for (int rep = 0; rep < 3; rep++)
        for (int m = 0; m < 5000; m++) {
            snprintf(name, sizeof name, "m%d", m);
            assert_int_equal(agg_add(agg, SCOPE_MANAGER, name, &p, one, COUNTER_ACTIVITY_COUNT), 0);
        }
    assert_int_equal(agg_bucket_count(agg), 5000 * 4);
    for (size_t i = 0; i < agg_bucket_count(agg); i++) {
        assert_int_equal(agg_bucket_at(agg, i)->values[COUNTER_TOUCHES], 3);
        assert_int_equal(agg_bucket_at(agg, i)->values[COUNTER_ACTIVITY_COUNT + 2], 0);
    }
    agg_free(agg);
}

static void test_dedup_set(void **state)
{
    (void)state;
    dedup_t *set = dedup_new();
    char ids[3000][16];
    for (int i = 0; i < 3000; i++) {
        snprintf(ids[i], sizeof ids[i], "e-%d", i);
        assert_false(dedup_seen(set, ids[i]));
    }
    for (int i = 0; i < 3000; i++)
        assert_true(dedup_seen(set, ids[i]));
    dedup_reset(set);
    assert_false(dedup_seen(set, ids[7]));
    dedup_free(set);
}

static void test_batch_offsets_and_drop(void **state)
{
    (void)state;
    batch_t *b = batch_new();
    batch_add_event(b, 0, 1, 10);
    batch_add_event(b, 0, 2, 5);
    batch_add_event(b, 0, 1, 11);
    batch_add_event(b, 0, 1, 12);
    batch_unadd_event(b); /* offset 12 was invalid after all */
    batch_invalid_t *inv = batch_add_invalid(b, 0, 1, 12, NULL, 0, "x{", 2, "json: parse error");
    assert_non_null(inv);
    assert_null(inv->key);
    batch_invalid_t *inv2 = batch_add_invalid(b, 0, 2, 6, "k", 1, "", 0, "message: empty");
    uint64_t seq2 = inv2->seq;
    assert_int_equal(batch_event_count(b), 3);
    assert_int_equal(batch_message_count(b), 5);
    assert_int_equal(batch_partition_count(b), 2);
    for (size_t i = 0; i < batch_partition_count(b); i++) {
        const batch_partition_t *p = batch_partition_at(b, i);
        assert_int_equal(p->next_offset, p->partition == 1 ? 13 : 7);
    }
    batch_drop_partition(b, 0, 1);
    assert_int_equal(batch_event_count(b), 1);
    assert_int_equal(batch_invalid_count(b), 1);
    assert_int_equal(batch_partition_count(b), 1);
    assert_false(batch_has_partition(b, 0, 1));
    assert_ptr_equal(batch_invalid_by_seq(b, seq2), batch_invalid_at(b, 0));
    assert_null(batch_invalid_by_seq(b, inv2->seq - 1));
    batch_clear(b);
    assert_int_equal(batch_message_count(b), 0);
    assert_int_equal(batch_bytes(b), 0);
    batch_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_calls),          cmocka_unit_test(test_emails_and_meetings),
        cmocka_unit_test(test_buckets_sum),    cmocka_unit_test(test_many_buckets),
        cmocka_unit_test(test_dedup_set),      cmocka_unit_test(test_batch_offsets_and_drop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
