/* kpi-gen: a reproducible generator of sales-activity events (contract section 1), as a
 * real Kafka producer or into a file. See tools/README-tools.md for the options.
 *
 * The simulation walks calendar days. For each day it lays out every manager's working
 * day (09:00-18:00 Mon-Fri in the zone of the manager's team) as compact event specs,
 * sorts them by time and only then formats them: one JSON text at a time into a reused
 * buffer, so the hot path allocates nothing. All randomness comes from xoshiro256**
 * streams seeded by --seed and is drawn in a fixed order, so the same seed and arguments
 * give a byte-identical message sequence (except --live, which stamps wall time, and a
 * run without --start, whose first day depends on today).
 *
 * Deals follow a lifecycle apart from the activities (deals_move, deals_create): leads by
 * the manager's segment, a dwell of days between moves, stage-by-stage conversion, lost at
 * any open stage, skips, returns, amount-only updates, reassignment and reopening. Every
 * deal event is keyed by its deal (or --deal-key manager) so a deal keeps its order.
 *
 * Invalid messages (--invalid-frac) rotate through every kind section 1 names, several
 * variants each; no payload contains '\n', so --out files stay one message per line. */
#include <errno.h>
#include <signal.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

#include "config.h"
#include "event.h"
#include "period.h"


/* ---- random numbers: xoshiro256**, seeded through splitmix64 -------------------------- */

typedef struct rng {
    uint64_t s[4];
} rng_t;

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rng_next(rng_t *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

static void rng_seed(rng_t *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) {
        uint64_t z = (seed += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        r->s[i] = z ^ (z >> 31);
    }
}

/* Integer-only draws: no libm in the stream, so output does not depend on its rounding. */
static uint32_t rng_below(rng_t *r, uint32_t n) {
    return (uint32_t)(((rng_next(r) >> 32) * (uint64_t)n) >> 32);
}
static int rng_range(rng_t *r, int lo, int hi) {
    return lo + (int)rng_below(r, (uint32_t)(hi - lo + 1));
}
static bool rng_pct(rng_t *r, unsigned pct) { return rng_below(r, 100) < pct; }

/* ---- output buffer: appenders instead of snprintf on the hot path ------------------------ */

typedef struct obuf {
    char *p;
    size_t len, cap;
} obuf_t;

static void ob_put(obuf_t *b, const void *s, size_t n) {
    if (n > b->cap - b->len)
        n = b->cap - b->len; /* cannot happen for what we write; never overflow anyway */
    memcpy(b->p + b->len, s, n);
    b->len += n;
}
#define OB_LIT(b, lit) ob_put((b), (lit), sizeof(lit) - 1)
static void ob_str(obuf_t *b, const char *s) { ob_put(b, s, strlen(s)); }
static void ob_chr(obuf_t *b, char c) {
    if (b->len < b->cap)
        b->p[b->len++] = c;
}
static void ob_u64(obuf_t *b, uint64_t v) {
    char t[20];
    int n = 0;
    do
        t[n++] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    while (n)
        ob_chr(b, t[--n]);
}
static void ob_pad(obuf_t *b, unsigned v, int width) {
    char t[10];
    for (int i = width - 1; i >= 0; i--, v /= 10)
        t[i] = (char)('0' + v % 10);
    ob_put(b, t, (size_t)width);
}
static void ob_rep(obuf_t *b, char c, size_t n) {
    while (n-- && b->len < b->cap)
        b->p[b->len++] = c;
}

/* ---- the roster and the simulation state ------------------------------------------------- */

enum cp_kind { CP_NONE, CP_NULL, CP_EXT_PHONE, CP_EXT_EMAIL, CP_INT_PHONE, CP_INT_EMAIL,
               CP_LOOKALIKE_EMAIL /* external, but its domain contains an internal one */ };
enum flag_form { FLAG_ABSENT, FLAG_TRUE, FLAG_FALSE, FLAG_NULL };

/* Segments size a manager's deals: from the team name (contains "smb", "ent"; else
 * mid-market). */
enum segment { SEG_MM, SEG_SMB, SEG_ENT };

/* A deal still in play: open, or lost but due to reopen. They sit in one pool, not with
 * their manager, because reassignment hands them from one manager to another. */
struct deal {
    uint32_t num;
    uint32_t owner;        /* index into gen_t.mgrs: who the next event names */
    int64_t last_ts;       /* of its latest event: the next one must be later */
    int32_t due;           /* simulated day of its next move */
    int8_t pos, max_pos;   /* current / furthest open stage, indices into gen_t.open_stages */
    uint8_t segment;       /* enum segment, of the manager who opened it */
    bool has_amount;
    bool lost;             /* lost, waiting to reopen on day `due` */
    bool reopened;         /* once only: a deal lost twice is gone */
    int64_t amount_cents;
};

struct mgr {
    char id[EVENT_MANAGER_MAX + 1];
    period_zone_t *zone;   /* borrowed from gen_t.zones */
    int intensity;         /* % of average activity: some managers lag and trip alerts */
    int connect_pct;       /* outbound connect rate, 30..40 */
    uint8_t segment;       /* enum segment */
    uint32_t team;         /* index into gen_t.team_start/team_count; n_teams: none */
    uint32_t team_pos;     /* own place among the team's members */
    int64_t day_t0, day_t1; /* today's working hours, epoch ms (set by gen_day) */
};

/* What a deal event means, for --stats (counted when it is sent, not when simulated). */
enum { DF_NEW = 1, DF_WON = 2, DF_LOST = 4 /* first loss only */, DF_REASSIGNED = 8,
       DF_REOPENED = 16 };

/* An event before formatting: everything the text needs that must be drawn in time order. */
struct spec {
    int64_t ts_ms;
    uint32_t order, mgr;   /* order: unique tie-break, so the sort is a total order */
    uint8_t type, dir, status;
    uint8_t kind;          /* meeting: 0 absent (followup), 1 "first", 2 "followup" */
    uint8_t next_step;     /* enum flag_form */
    uint8_t cp;            /* enum cp_kind */
    uint8_t internal;      /* enum flag_form */
    int8_t stage;          /* index into gen_t.stages */
    uint8_t source;        /* 0: none */
    bool has_amount;
    uint8_t deal_flags;    /* DF_* */
    int32_t duration_s;    /* -1: field absent */
    uint32_t deal_num;
    int64_t amount_cents;
};

typedef struct gen {
    rng_t rng;
    uint64_t seed;
    struct mgr *mgrs;                  /* owned */
    size_t n_mgrs;
    period_zone_t **zones;             /* owned, one per distinct zone name */
    size_t n_zones;
    const char **domains, **prefixes, **stages; /* arrays owned, strings borrowed */
    size_t n_domains, n_prefixes, n_stages;
    int open_stages[32];               /* non-terminal stages, in order */
    int n_open, won, lost;             /* won/lost: -1 when not configured */
    size_t max_message_bytes;
    int64_t start_day;                 /* days since 1970-01-01 of simulated day 0 */
    char prefix[48];                   /* of event and deal ids */
    uint64_t seq, inv_seq, deal_seq;
    struct deal *deals;                /* the deal pool, owned; order matters for replay */
    size_t n_deals, cap_deals;
    uint32_t *team_members;            /* manager indices grouped by team, owned */
    uint32_t *team_start, *team_count; /* per team slot (configured teams + none), owned */
    struct spec *specs;                /* one simulated day, owned, reused */
    size_t n_specs, cap_specs;
    obuf_t out;                        /* the current message, owned */
} gen_t;

static const char *const first_names[] = {"ivan", "olga", "petr", "anna", "sergey", "maria",
    "dmitry", "elena", "john", "emily", "wei", "fatima", "lucas", "sofia", "ahmed", "yuki"};
static const char *const last_names[] = {"petrov", "smirnova", "kuznetsov", "popova", "sokolov",
    "volkova", "smith", "garcia", "mueller", "chen", "rossi", "novak", "tanaka", "khan"};
static const char *const companies[] = {"acme-logistics.com", "severtrade.ru", "globex.io",
    "initech.com", "stroymontazh.ru", "uralmet.ru", "northwind.co.uk", "contoso.de",
    "techno-park.kz", "gmail.com", "yandex.ru", "mail.ru", "outlook.com"};
static const char *const sources[] = {"web", "referral", "cold_call", "event", "partner",
    "inbound_call"};
static const char *const default_stages[] = {"lead", "mql", "sql", "proposal", "negotiation",
    "won", "lost"};
static const char *const default_domains[] = {"ourcompany.ru"};
static const char *const default_prefixes[] = {"+7495100"};
#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* ---- simulating one day ------------------------------------------------------------------ */

static struct spec *spec_push(gen_t *g, uint32_t mgr, int64_t ts_ms, enum event_type type) {
    if (g->n_specs == g->cap_specs) {
        size_t cap = g->cap_specs ? g->cap_specs * 2 : 4096;
        struct spec *p = realloc(g->specs, cap * sizeof(*p));
        if (!p) {
            fprintf(stderr, "kpi-gen: out of memory\n");
            exit(1);
        }
        g->specs = p;
        g->cap_specs = cap;
    }
    struct spec *s = &g->specs[g->n_specs];
    memset(s, 0, sizeof(*s));
    s->order = (uint32_t)g->n_specs++;
    s->mgr = mgr;
    s->ts_ms = ts_ms;
    s->type = (uint8_t)type;
    s->stage = -1;
    s->duration_s = -1;
    return s;
}

static int64_t rand_time(gen_t *g, int64_t t0, int64_t t1) {
    return t0 + (int64_t)rng_below(&g->rng, (uint32_t)((t1 - t0) / 1000)) * 1000 +
           rng_below(&g->rng, 1000);
}

static int scaled(const struct mgr *m, int n) { return (n * m->intensity + 50) / 100; }

/* Who is on the other side. internal_pct: share of activities with a colleague. */
static void party(gen_t *g, struct spec *s, bool phone, unsigned internal_pct) {
    unsigned k = rng_below(&g->rng, 100);
    if (rng_pct(&g->rng, internal_pct)) {
        bool can = phone ? g->n_prefixes > 0 : g->n_domains > 0;
        uint8_t icp = phone ? CP_INT_PHONE : CP_INT_EMAIL;
        if (k < 60 && can) {
            s->cp = icp;
        } else if (k < 80 && can) {
            s->cp = icp;
            s->internal = FLAG_TRUE;
        } else { /* a colleague on a private number/address: only the flag tells */
            s->internal = FLAG_TRUE;
            s->cp = k < 90 ? (phone ? CP_EXT_PHONE : CP_EXT_EMAIL) : CP_NONE;
        }
        return;
    }
    if (k < 90)
        s->cp = phone ? CP_EXT_PHONE : CP_EXT_EMAIL;
    else if (k < 94)
        s->cp = CP_NONE;
    else if (k < 97)
        s->cp = CP_NULL;
    else if (phone)
        s->cp = CP_EXT_PHONE;
    else
        s->cp = g->n_domains ? CP_LOOKALIKE_EMAIL : CP_EXT_EMAIL;
    k = rng_below(&g->rng, 100);
    s->internal = k < 95 ? FLAG_ABSENT : k < 98 ? FLAG_FALSE : FLAG_NULL;
}

static int32_t talk_seconds(gen_t *g) {
    unsigned k = rng_below(&g->rng, 100);
    if (k < 10)
        return rng_range(&g->rng, 1, 9);      /* hung up at once: not a touch */
    if (k < 18)
        return rng_range(&g->rng, 10, 29);
    if (k < 96) /* product of two uniforms: most calls short, a long tail to 15 min */
        return 30 + (int32_t)(rng_below(&g->rng, 871) * rng_below(&g->rng, 1001) / 1000);
    return rng_range(&g->rng, 900, 3600);
}

static void gen_calls(gen_t *g, uint32_t mi, int64_t t0, int64_t t1) {
    struct mgr *m = &g->mgrs[mi];
    int out = scaled(m, rng_range(&g->rng, 30, 70)), in = scaled(m, rng_range(&g->rng, 2, 10));
    for (int i = 0; i < out + in; i++) {
        struct spec *s = spec_push(g, mi, rand_time(g, t0, t1), EVENT_CALL);
        unsigned k = rng_below(&g->rng, 100);
        s->dir = i < out ? DIRECTION_OUTBOUND : DIRECTION_INBOUND;
        party(g, s, true, i < out ? 6 : 4);
        if (s->dir == DIRECTION_OUTBOUND ? k < (unsigned)m->connect_pct : k < 85)
            s->status = CALL_CONNECTED;
        else
            s->status = k % 20 < 13 ? CALL_NO_ANSWER : k % 20 < 17 ? CALL_BUSY : CALL_FAILED;
        if (s->status == CALL_CONNECTED)
            s->duration_s = talk_seconds(g);
        else
            s->duration_s = rng_pct(&g->rng, 50) ? 0 : -1; /* 0 is the default */
    }
}

static void gen_emails(gen_t *g, uint32_t mi, int64_t t0, int64_t t1) {
    struct mgr *m = &g->mgrs[mi];
    int out = scaled(m, rng_range(&g->rng, 15, 35)), in = scaled(m, rng_range(&g->rng, 8, 25));
    for (int i = 0; i < out + in; i++) {
        struct spec *s = spec_push(g, mi, rand_time(g, t0, t1), EVENT_EMAIL);
        s->dir = i < out ? DIRECTION_OUTBOUND : DIRECTION_INBOUND;
        party(g, s, false, 8);
    }
}

static void gen_meetings(gen_t *g, uint32_t mi, int64_t t0, int64_t t1) {
    struct mgr *m = &g->mgrs[mi];
    int n = scaled(m, rng_range(&g->rng, 0, 4));
    int slots = (int)((t1 - t0) / 1800000); /* on the half hour, like calendars */
    for (int i = 0; i < n && slots > 0; i++) {
        int64_t ts = t0 + (int64_t)rng_below(&g->rng, (uint32_t)slots) * 1800000 +
                     rng_below(&g->rng, 120000);
        struct spec *s = spec_push(g, mi, ts, EVENT_MEETING);
        unsigned k = rng_below(&g->rng, 100);
        bool first = rng_pct(&g->rng, 35);
        s->status = k < 62 ? MEETING_HELD : k < 80 ? MEETING_SCHEDULED
                  : k < 90 ? MEETING_NO_SHOW : MEETING_CANCELLED;
        s->kind = first ? 1 : rng_pct(&g->rng, 50) ? 2 : 0;
        if (first && s->status == MEETING_HELD)
            s->next_step = rng_pct(&g->rng, 55) ? FLAG_TRUE
                         : rng_pct(&g->rng, 50) ? FLAG_FALSE : FLAG_ABSENT;
        party(g, s, rng_pct(&g->rng, 10), 8);
        if (s->cp == CP_EXT_EMAIL && rng_pct(&g->rng, 40))
            s->cp = CP_NONE;
    }
}

/* ---- the deal lifecycle ------------------------------------------------------------- */
/* Each day every deal in the pool whose due day has come makes one move, then sleeps its
 * segment's dwell time (calendar days; weekends only postpone it). A move is an
 * amount-only update, a step back (proposal -> sql, always followed by the step forward
 * again), or a decision at the deal's furthest stage: pass (to the next stage, now and
 * then skipping one, or from the last open stage to won) with that stage's conversion
 * rate, or else lost. About 2 % of moves hand the deal to a colleague; about 3 % of lost
 * deals reopen at the stage they were lost at, within 30 days. */

static const struct seg_model {
    int leads_x100;          /* new leads per working day at intensity 100, times 100 */
    int64_t lo, hi;          /* deal amounts, currency units */
    int dwell_lo, dwell_hi;  /* calendar days between moves */
} seg_models[] = {
    [SEG_MM] = {120, 20000, 300000, 2, 12},
    [SEG_SMB] = {220, 2000, 30000, 1, 6},
    [SEG_ENT] = {60, 100000, 2000000, 4, 24},
};

#define REASSIGN_PCT 2
#define SKIP_PCT 4
#define REOPEN_PCT 3
#define REOPEN_DAYS_MAX 27 /* +2 for a weekend: still within 30 days */

/* Pass rate of the decision at open stage `pos` (the last one's is the win rate). */
static unsigned conv_pct(const gen_t *g, int pos) {
    static const unsigned rates[] = {60, 50, 60, 55}; /* lead>mql mql>sql sql>prop prop>neg */
    if (pos == g->n_open - 1)
        return 50;
    return pos < (int)NELEM(rates) ? rates[pos] : 55;
}

static bool contains_ci(const char *hay, const char *needle) {
    size_t n = strlen(needle);
    for (; *hay; hay++) {
        size_t i = 0;
        while (i < n && hay[i] && (hay[i] | 0x20) == needle[i])
            i++;
        if (i == n)
            return true;
    }
    return false;
}

static uint8_t segment_of(const char *team) {
    if (!team)
        return SEG_MM;
    if (contains_ci(team, "smb"))
        return SEG_SMB;
    if (contains_ci(team, "ent"))
        return SEG_ENT;
    return SEG_MM;
}

/* Whole units, 60 % of them round, 20 % with cents. */
static int64_t amount_finish(gen_t *g, int64_t units, int64_t step) {
    if (rng_pct(&g->rng, 60) && units >= step)
        units -= units % step;
    if (units < 1)
        units = 1;
    return units * 100 + (rng_pct(&g->rng, 20) ? rng_below(&g->rng, 100) : 0);
}

static int64_t rand_amount_cents(gen_t *g, uint8_t segment) {
    const struct seg_model *sm = &seg_models[segment];
    int64_t span = sm->hi - sm->lo; /* product of two uniforms: many small, a long tail */
    int64_t units = sm->lo + span * rng_below(&g->rng, 1001) / 1000 *
                                 rng_below(&g->rng, 1001) / 1000;
    return amount_finish(g, units, sm->lo >= 20000 ? 1000 : 100);
}

/* A renegotiated amount: 80..125 % of the old one. */
static int64_t amount_revised(gen_t *g, const struct deal *d) {
    if (!d->has_amount)
        return rand_amount_cents(g, d->segment);
    int64_t units = d->amount_cents / 100 * rng_range(&g->rng, 80, 125) / 100;
    return amount_finish(g, units, seg_models[d->segment].lo >= 20000 ? 1000 : 100);
}

static int32_t dwell_days(gen_t *g, uint8_t segment) {
    return rng_range(&g->rng, seg_models[segment].dwell_lo, seg_models[segment].dwell_hi);
}

/* Someone else for deal owner mi: a teammate when the team has one, else anyone. */
static uint32_t mgr_pick_colleague(gen_t *g, uint32_t mi) {
    const struct mgr *m = &g->mgrs[mi];
    uint32_t n = g->team_count[m->team], r;
    if (n > 1) {
        r = rng_below(&g->rng, n - 1);
        return g->team_members[g->team_start[m->team] + r + (r >= m->team_pos)];
    }
    r = rng_below(&g->rng, (uint32_t)g->n_mgrs - 1);
    return r + (r >= mi);
}

/* A ts for the deal's next event by manager mi today: in mi's working hours and in a later
 * whole second than the deal's last event (several ts forms drop milliseconds), so one
 * deal's events strictly increase whatever zones its owners work in. False: none left. */
static bool deal_slot(gen_t *g, const struct deal *d, uint32_t mi, int64_t *ts) {
    const struct mgr *m = &g->mgrs[mi];
    int64_t lo = (d->last_ts / 1000 + 1) * 1000;
    if (lo < m->day_t0)
        lo = m->day_t0;
    if (m->day_t1 - lo < 1000)
        return false;
    *ts = rand_time(g, lo, m->day_t1);
    return true;
}

static struct spec *deal_event(gen_t *g, struct deal *d, int64_t ts, int stage, uint8_t flags) {
    struct spec *s = spec_push(g, d->owner, ts, EVENT_DEAL_STAGE);
    s->deal_num = d->num;
    s->stage = (int8_t)stage;
    s->deal_flags = flags;
    s->amount_cents = d->amount_cents;
    d->last_ts = ts;
    return s;
}

enum deal_move { MOVE_AMOUNT, MOVE_BACK, MOVE_RETURN, MOVE_ADVANCE, MOVE_SKIP, MOVE_WON,
                 MOVE_LOST, MOVE_SKIP_LOST /* lost at the unrecorded stage */,
                 MOVE_DROP /* no terminal stage to go to: it just goes quiet */ };

/* How each move shifts the deal's open stage. */
static const int8_t move_shift[] = {[MOVE_BACK] = -1, [MOVE_RETURN] = 1, [MOVE_ADVANCE] = 1,
                                    [MOVE_SKIP] = 2, [MOVE_SKIP_LOST] = 1, [MOVE_DROP] = 0};

static enum deal_move deal_move(gen_t *g, const struct deal *d) {
    unsigned k = rng_below(&g->rng, 100);
    if (d->pos < d->max_pos)
        return MOVE_RETURN; /* the decision waits at the furthest stage */
    if (k < 7)
        return MOVE_AMOUNT;
    if (k < 11 && d->pos >= 2)
        return MOVE_BACK;
    if (!rng_pct(&g->rng, conv_pct(g, d->pos)))
        return g->lost >= 0 ? MOVE_LOST : MOVE_DROP;
    if (d->pos == g->n_open - 1)
        return g->won >= 0 ? MOVE_WON : MOVE_DROP;
    if (d->pos + 2 < g->n_open && rng_pct(&g->rng, SKIP_PCT)) {
        /* The next stage goes unrecorded, its decision taken now: every stage keeps its
         * rate, and only the daemon's ratios next to a skipped stage move (by ~SKIP_PCT). */
        if (rng_pct(&g->rng, conv_pct(g, d->pos + 1)))
            return MOVE_SKIP;
        return g->lost >= 0 ? MOVE_SKIP_LOST : MOVE_DROP;
    }
    return MOVE_ADVANCE;
}

/* A lost deal's reopening, on its due day. */
static void deal_reopen(gen_t *g, struct deal *d, int day) {
    int64_t ts;
    if (!deal_slot(g, d, d->owner, &ts))
        return; /* tomorrow */
    d->lost = false;
    d->reopened = true;
    d->due = day + dwell_days(g, d->segment);
    struct spec *s = deal_event(g, d, ts, g->open_stages[d->pos], DF_REOPENED);
    s->has_amount = d->has_amount && rng_pct(&g->rng, 30);
}

/* One move of a due deal. Returns false when the deal leaves the pool. */
static bool deal_step(gen_t *g, struct deal *d, int day) {
    uint32_t owner = d->owner;
    uint8_t flags = 0;
    int64_t ts;
    int stage;
    if (d->lost) {
        deal_reopen(g, d, day);
        return true;
    }
    if (g->n_mgrs > 1 && rng_pct(&g->rng, REASSIGN_PCT)) {
        owner = mgr_pick_colleague(g, owner);
        flags = DF_REASSIGNED;
    }
    if (!deal_slot(g, d, owner, &ts))
        return true; /* no time left in the new owner's day: try again tomorrow */
    enum deal_move mv = deal_move(g, d);
    if (mv == MOVE_DROP)
        return false;
    d->owner = owner;
    d->due = day + dwell_days(g, d->segment);
    bool lost = mv == MOVE_LOST || mv == MOVE_SKIP_LOST;
    d->pos = (int8_t)(d->pos + move_shift[mv]);
    if (d->pos > d->max_pos)
        d->max_pos = d->pos;
    stage = mv == MOVE_WON ? g->won : lost ? g->lost : g->open_stages[d->pos];
    if (mv == MOVE_WON)
        flags |= DF_WON;
    else if (lost && !d->reopened)
        flags |= DF_LOST;
    bool with_amount = false;
    if (mv == MOVE_AMOUNT || (!d->has_amount && d->pos >= g->n_open / 2 && !lost)) {
        d->amount_cents = amount_revised(g, d);
        d->has_amount = with_amount = true;
    } else if (d->has_amount) { /* repeating the known value is allowed */
        with_amount = rng_pct(&g->rng, mv == MOVE_WON ? 60 : 15);
    }
    deal_event(g, d, ts, stage, flags)->has_amount = with_amount;
    if (mv == MOVE_WON)
        return false;
    if (lost) { /* reopens at d->pos: where it was when lost */
        if (d->reopened || !rng_pct(&g->rng, REOPEN_PCT))
            return false;
        d->lost = true;
        d->due = day + rng_range(&g->rng, 1, REOPEN_DAYS_MAX);
    }
    return true;
}

static void deals_move(gen_t *g, int day) {
    for (size_t i = 0; i < g->n_deals;) {
        struct deal *d = &g->deals[i];
        if (d->due > day || deal_step(g, d, day))
            i++;
        else
            *d = g->deals[--g->n_deals]; /* gone: swap-remove, look at slot i again */
    }
}

static struct deal *deal_push(gen_t *g) {
    if (g->n_deals == g->cap_deals) {
        size_t cap = g->cap_deals ? g->cap_deals * 2 : 256;
        struct deal *p = realloc(g->deals, cap * sizeof(*p));
        if (!p) {
            fprintf(stderr, "kpi-gen: out of memory\n");
            exit(1);
        }
        g->deals = p;
        g->cap_deals = cap;
    }
    struct deal *d = &g->deals[g->n_deals++];
    memset(d, 0, sizeof(*d));
    return d;
}

/* Today's new leads of manager mi: the segment's rate, +-50 %, scaled by intensity. */
static void deals_create(gen_t *g, uint32_t mi, int day) {
    const struct mgr *m = &g->mgrs[mi];
    int base = seg_models[m->segment].leads_x100;
    int x = rng_range(&g->rng, base / 2, base * 3 / 2) * m->intensity / 100;
    int n = x / 100 + rng_pct(&g->rng, (unsigned)(x % 100));
    for (int i = 0; i < n; i++) {
        struct deal *d = deal_push(g);
        int64_t ts;
        d->num = (uint32_t)++g->deal_seq;
        d->owner = mi;
        d->segment = m->segment;
        d->has_amount = rng_pct(&g->rng, 30);
        d->amount_cents = d->has_amount ? rand_amount_cents(g, d->segment) : 0;
        d->due = day + dwell_days(g, d->segment);
        if (!deal_slot(g, d, mi, &ts)) { /* a zero-length working day */
            g->n_deals--;
            continue;
        }
        struct spec *s = deal_event(g, d, ts, g->open_stages[0], DF_NEW);
        s->source = (uint8_t)(1 + rng_below(&g->rng, NELEM(sources)));
        s->has_amount = d->has_amount;
    }
}

static int spec_cmp(const void *a, const void *b) {
    const struct spec *x = a, *y = b;
    if (x->ts_ms != y->ts_ms)
        return x->ts_ms < y->ts_ms ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

/* Lays out simulated day `day` for every manager, sorted by time. Returns the count. */
static size_t gen_day(gen_t *g, int day) {
    int y, mo, d;
    period_civil_from_days(g->start_day + day, &y, &mo, &d);
    g->n_specs = 0;
    if (period_weekday(y, mo, d) > 5)
        return 0;
    for (uint32_t i = 0; i < g->n_mgrs; i++) {
        struct mgr *m = &g->mgrs[i];
        int64_t t0 = period_local_to_utc(m->zone, y, mo, d, 9, 0);
        int64_t t1 = period_local_to_utc(m->zone, y, mo, d, 18, 0);
        m->day_t0 = t0;
        m->day_t1 = t1;
        gen_calls(g, i, t0, t1);
        gen_emails(g, i, t0, t1);
        gen_meetings(g, i, t0, t1);
    }
    if (g->n_open > 0) { /* after every manager's hours are known: deals change hands */
        deals_move(g, day);
        for (uint32_t i = 0; i < g->n_mgrs; i++)
            deals_create(g, i, day);
    }
    qsort(g->specs, g->n_specs, sizeof(*g->specs), spec_cmp);
    return g->n_specs;
}

/* ---- formatting ---------------------------------------------------------------------- */

static void put_rfc3339(obuf_t *b, int64_t ts_ms, int32_t off_s, int frac_digits, unsigned micro) {
    int64_t local = ts_ms + (int64_t)off_s * 1000;
    int64_t days = local / 86400000 - (local % 86400000 < 0);
    int64_t msd = local - days * 86400000;
    int y, m, d;
    period_civil_from_days(days, &y, &m, &d);
    ob_pad(b, (unsigned)y, 4);
    ob_chr(b, '-');
    ob_pad(b, (unsigned)m, 2);
    ob_chr(b, '-');
    ob_pad(b, (unsigned)d, 2);
    ob_chr(b, 'T');
    ob_pad(b, (unsigned)(msd / 3600000), 2);
    ob_chr(b, ':');
    ob_pad(b, (unsigned)(msd / 60000 % 60), 2);
    ob_chr(b, ':');
    ob_pad(b, (unsigned)(msd / 1000 % 60), 2);
    if (frac_digits) {
        ob_chr(b, '.');
        ob_pad(b, (unsigned)(msd % 1000), 3);
        if (frac_digits > 3)
            ob_pad(b, micro, frac_digits - 3);
    }
    if (off_s == 0 && frac_digits <= 3) {
        ob_chr(b, 'Z');
        return;
    }
    ob_chr(b, off_s < 0 ? '-' : '+');
    if (off_s < 0)
        off_s = -off_s;
    ob_pad(b, (unsigned)(off_s / 3600), 2);
    ob_chr(b, ':');
    ob_pad(b, (unsigned)(off_s / 60 % 60), 2);
}

/* Every accepted form of ts: Z, fractions, the manager's own offset, foreign offsets, ms. */
static void put_ts(gen_t *g, int64_t ts_ms, period_zone_t *zone) {
    obuf_t *b = &g->out;
    unsigned k = rng_below(&g->rng, 100);
    if (k >= 83) {
        ob_u64(b, (uint64_t)ts_ms);
        return;
    }
    ob_chr(b, '"');
    if (k < 40)
        put_rfc3339(b, ts_ms, 0, 0, 0);
    else if (k < 55)
        put_rfc3339(b, ts_ms, 0, 3, 0);
    else if (k < 75)
        put_rfc3339(b, ts_ms, period_utc_offset_s(zone, ts_ms), 0, 0);
    else if (k < 80)
        put_rfc3339(b, ts_ms, -5 * 3600, 0, 0);
    else
        put_rfc3339(b, ts_ms, 5 * 3600 + 1800, 6, rng_below(&g->rng, 1000));
    ob_chr(b, '"');
}

/* Counterparts come from address books: each manager has CLIENTS contacts (called again
 * and again, a few far more often), the company CLIENTS_INTERNAL colleagues. A contact's
 * number or address is drawn from its own stream, seeded by (seed, owner, index, kind),
 * so it is the same every time; besides being realistic, the repeats are what lets a
 * zstd batch shrink to the size the mock broker can hold. */
#define CLIENTS 200
#define CLIENTS_INTERNAL 60

static void contact_rng(const gen_t *g, rng_t *r, uint32_t owner, uint32_t idx, unsigned kind) {
    rng_seed(r, g->seed ^ ((uint64_t)owner << 32) ^ ((uint64_t)idx << 3) ^ kind);
}

static void put_digits(obuf_t *b, rng_t *r, int n) {
    for (int i = 0; i < n; i++)
        ob_chr(b, (char)('0' + rng_below(r, 10)));
}

static bool has_internal_prefix(const gen_t *g, const char *p, size_t n) {
    char norm[64];
    size_t k = 0;
    for (size_t i = 0; i < n && k < sizeof(norm) - 1; i++)
        if (!strchr(" -()", p[i]))
            norm[k++] = p[i];
    norm[k] = '\0';
    for (size_t i = 0; i < g->n_prefixes; i++)
        if (strncmp(norm, g->prefixes[i], strlen(g->prefixes[i])) == 0)
            return true;
    return false;
}

static void put_phone(gen_t *g, rng_t *r, bool internal) {
    obuf_t *b = &g->out;
    size_t start = b->len;
    if (internal) {
        ob_str(b, g->prefixes[rng_below(r, (uint32_t)g->n_prefixes)]);
        if (rng_pct(r, 50))
            OB_LIT(b, " ");
        put_digits(b, r, 2);
        if (rng_pct(r, 50))
            OB_LIT(b, "-");
        put_digits(b, r, 2);
        return;
    }
    switch (rng_below(r, 6)) {
    case 0: OB_LIT(b, "+7 (9"); put_digits(b, r, 2); OB_LIT(b, ") "); put_digits(b, r, 3);
            OB_LIT(b, "-"); put_digits(b, r, 2); OB_LIT(b, "-"); put_digits(b, r, 2); break;
    case 1: OB_LIT(b, "+79"); put_digits(b, r, 9); break;
    case 2: OB_LIT(b, "8 (495) "); put_digits(b, r, 3); OB_LIT(b, "-"); put_digits(b, r, 2);
            OB_LIT(b, "-"); put_digits(b, r, 2); break;
    case 3: OB_LIT(b, "+1 (212) 555-01"); put_digits(b, r, 2); break;
    case 4: OB_LIT(b, "+49 30 "); put_digits(b, r, 7); break;
    default: OB_LIT(b, "+7 495 "); put_digits(b, r, 3); OB_LIT(b, " "); put_digits(b, r, 4); break;
    }
    if (has_internal_prefix(g, b->p + start, b->len - start)) { /* never by accident */
        b->len = start;
        OB_LIT(b, "+44 20 7946 0");
        put_digits(b, r, 3);
    }
}

static void put_email(gen_t *g, rng_t *r, enum cp_kind kind) {
    obuf_t *b = &g->out;
    const char *first = first_names[rng_below(r, NELEM(first_names))];
    const char *last = last_names[rng_below(r, NELEM(last_names))];
    unsigned k = rng_below(r, 100);
    bool shout = kind == CP_INT_EMAIL && k < 10;
    if (shout) { /* domains compare case-insensitively */
        ob_chr(b, (char)(first[0] - 'a' + 'A'));
        ob_str(b, first + 1);
    } else {
        ob_str(b, first);
    }
    if (k % 5 != 0) {
        ob_chr(b, '.');
        ob_str(b, last);
    }
    ob_chr(b, '@');
    if (kind == CP_EXT_EMAIL) {
        ob_str(b, companies[rng_below(r, NELEM(companies))]);
        return;
    }
    const char *dom = g->domains[rng_below(r, (uint32_t)g->n_domains)];
    if (kind == CP_LOOKALIKE_EMAIL) {
        if (k < 50) {
            ob_str(b, dom);
            OB_LIT(b, ".example.com");
        } else {
            OB_LIT(b, "y");
            ob_str(b, dom);
        }
        return;
    }
    if (k >= 10 && k < 30)
        OB_LIT(b, "sales.");
    for (const char *c = dom; *c; c++)
        ob_chr(b, shout && *c >= 'a' && *c <= 'z' ? (char)(*c - 'a' + 'A') : *c);
}

static void put_counterpart(gen_t *g, uint32_t mgr, enum cp_kind kind) {
    rng_t r;
    bool internal = kind == CP_INT_PHONE || kind == CP_INT_EMAIL;
    uint32_t n = internal ? CLIENTS_INTERNAL : CLIENTS;
    uint32_t idx = rng_below(&g->rng, n) * rng_below(&g->rng, n + 1) / n; /* favourites */
    contact_rng(g, &r, internal ? UINT32_MAX : mgr, idx, kind);
    if (kind == CP_EXT_PHONE || kind == CP_INT_PHONE)
        put_phone(g, &r, internal);
    else
        put_email(g, &r, kind);
}

static void put_flag(obuf_t *b, const char *name_lit, size_t name_len, uint8_t form) {
    if (form == FLAG_ABSENT)
        return;
    ob_put(b, name_lit, name_len);
    if (form == FLAG_TRUE)
        OB_LIT(b, "true");
    else if (form == FLAG_FALSE)
        OB_LIT(b, "false");
    else
        OB_LIT(b, "null");
}
#define PUT_FLAG(b, lit, form) put_flag((b), (lit), sizeof(lit) - 1, (form))

static void put_amount(gen_t *g, int64_t cents) {
    obuf_t *b = &g->out;
    uint64_t units = (uint64_t)(cents / 100);
    unsigned k = rng_below(&g->rng, 100);
    if (cents % 100) {
        ob_u64(b, units);
        ob_chr(b, '.');
        ob_pad(b, (unsigned)(cents % 100), 2);
    } else if (units % 1000 == 0 && k < 10) {
        ob_u64(b, units / 1000);
        OB_LIT(b, "e3");
    } else {
        ob_u64(b, units);
        if (k >= 90)
            OB_LIT(b, ".0");
    }
}

static void put_event_id(gen_t *g, uint64_t seq) {
    obuf_t *b = &g->out;
    unsigned k = rng_below(&g->rng, 1000);
    OB_LIT(b, "\"event_id\":\"");
    ob_str(b, g->prefix);
    if (k < 5) /* any printable ASCII is allowed, quotes and spaces included */
        OB_LIT(b, " #");
    else if (k < 8)
        OB_LIT(b, "\\\"q");
    else
        ob_chr(b, '-');
    ob_u64(b, seq);
    ob_chr(b, '"');
}

static const char *const type_names[] = {"call", "email", "meeting", "deal_stage"};
static const char *const call_status_names[] = {"connected", "no_answer", "busy", "failed"};
static const char *const meeting_status_names[] = {"scheduled", "held", "cancelled", "no_show"};

/* Formats a valid event into g->out. Returns whether the daemon will see it as internal. */
static bool gen_format_valid(gen_t *g, const struct spec *s, int64_t live_ts) {
    obuf_t *b = &g->out;
    const struct mgr *m = &g->mgrs[s->mgr];
    uint64_t seq = ++g->seq;
    bool id_last = rng_pct(&g->rng, 8); /* field order must not matter */
    b->len = 0;
    ob_chr(b, '{');
    if (!id_last) {
        put_event_id(g, seq);
        ob_chr(b, ',');
    }
    OB_LIT(b, "\"type\":\"");
    ob_str(b, type_names[s->type]);
    OB_LIT(b, "\",\"manager_id\":\"");
    ob_str(b, m->id);
    OB_LIT(b, "\",\"ts\":");
    put_ts(g, live_ts ? live_ts : s->ts_ms, m->zone);
    if (s->type == EVENT_CALL || s->type == EVENT_EMAIL) {
        OB_LIT(b, ",\"direction\":\"");
        ob_str(b, s->dir == DIRECTION_OUTBOUND ? "outbound" : "inbound");
        ob_chr(b, '"');
    }
    if (s->type == EVENT_CALL) {
        OB_LIT(b, ",\"status\":\"");
        ob_str(b, call_status_names[s->status]);
        ob_chr(b, '"');
        if (s->duration_s >= 0) {
            OB_LIT(b, ",\"duration_s\":");
            ob_u64(b, (uint64_t)s->duration_s);
        }
    } else if (s->type == EVENT_MEETING) {
        OB_LIT(b, ",\"status\":\"");
        ob_str(b, meeting_status_names[s->status]);
        ob_chr(b, '"');
        if (s->kind)
            ob_str(b, s->kind == 1 ? ",\"kind\":\"first\"" : ",\"kind\":\"followup\"");
        PUT_FLAG(b, ",\"next_step\":", s->next_step);
    } else if (s->type == EVENT_DEAL_STAGE) {
        OB_LIT(b, ",\"deal_id\":\"");
        ob_str(b, g->prefix);
        OB_LIT(b, "-D");
        ob_u64(b, s->deal_num);
        OB_LIT(b, "\",\"stage\":\"");
        ob_str(b, g->stages[s->stage]);
        ob_chr(b, '"');
        if (s->has_amount) {
            OB_LIT(b, ",\"amount\":");
            put_amount(g, s->amount_cents);
        }
        if (s->source) {
            OB_LIT(b, ",\"source\":\"");
            ob_str(b, sources[s->source - 1]);
            ob_chr(b, '"');
        }
    }
    if (s->cp == CP_NULL) {
        OB_LIT(b, ",\"counterpart\":null");
    } else if (s->cp != CP_NONE) {
        OB_LIT(b, ",\"counterpart\":\"");
        put_counterpart(g, s->mgr, (enum cp_kind)s->cp);
        ob_chr(b, '"');
    }
    PUT_FLAG(b, ",\"internal\":", s->internal);
    if (rng_pct(&g->rng, 3)) /* unknown fields are ignored */
        OB_LIT(b, ",\"crm\":{\"system\":\"amo\",\"v\":2,\"tags\":[\"q4\",null,1.5]}");
    if (id_last) {
        ob_chr(b, ',');
        put_event_id(g, seq);
    }
    ob_chr(b, '}');
    return s->type != EVENT_DEAL_STAGE &&
           (s->internal == FLAG_TRUE || s->cp == CP_INT_PHONE || s->cp == CP_INT_EMAIL);
}

/* ---- invalid messages ----------------------------------------------------------------- */
/* Templates: $I a fresh id, $M the manager, $T an RFC 3339 ts, $E epoch ms, $0 a NUL byte,
 * $L a 65-byte manager id, $B a 129-byte event id, $P padding up to oversize. */

#define HEAD "{\"event_id\":\"$I\",\"type\":\"call\",\"manager_id\":\"$M\",\"ts\":\"$T\""
#define CALL ",\"direction\":\"outbound\",\"status\":\"connected\""
#define EHEAD "{\"event_id\":\"$I\",\"type\":\"email\",\"manager_id\":\"$M\",\"ts\":\"$T\""
#define DHEAD "{\"event_id\":\"$I\",\"type\":\"deal_stage\",\"manager_id\":\"$M\",\"ts\":\"$T\""

static const char *const inv_bad_json[] = {
    HEAD ",\"direction\":\"outbound\"", EHEAD ",,\"direction\":\"outbound\"}",
    "{'event_id':'$I','type':'email'}", EHEAD ",\"direction\":\"outbound\"}}", "",
    "{\"event_id\":\"$I\" \"type\":\"call\"}", EHEAD ",\"direction\":outbound}"};
static const char *const inv_non_object[] = {"[\"$I\",\"call\"]", "\"$I\"", "42", "null",
    "true", "[" EHEAD ",\"direction\":\"outbound\"}]"};
static const char *const inv_wrong_type[] = {
    HEAD CALL ",\"duration_s\":\"60\"}",
    "{\"event_id\":\"$I\",\"type\":\"call\",\"manager_id\":42,\"ts\":\"$T\"" CALL "}",
    "{\"event_id\":\"$I\",\"type\":[\"call\"],\"manager_id\":\"$M\",\"ts\":\"$T\"" CALL "}",
    "{\"event_id\":\"$I\",\"type\":\"meeting\",\"manager_id\":\"$M\",\"ts\":\"$T\",\"status\":"
    "\"held\",\"kind\":\"first\",\"next_step\":\"yes\"}",
    EHEAD ",\"direction\":\"outbound\",\"internal\":1}",
    DHEAD ",\"deal_id\":\"$I\",\"stage\":\"lead\",\"amount\":\"1000\"}",
    "{\"event_id\":12345,\"type\":\"email\",\"manager_id\":\"$M\",\"ts\":\"$T\",\"direction\":"
    "\"inbound\"}",
    "{\"event_id\":\"$I\",\"type\":\"email\",\"manager_id\":\"$M\",\"ts\":{\"ms\":$E},"
    "\"direction\":\"inbound\"}",
    HEAD CALL ",\"counterpart\":12345}", DHEAD ",\"deal_id\":\"$I\",\"stage\":\"lead\",\"source\":7}",
    HEAD ",\"direction\":\"outbound\",\"status\":true}", "{\"event_id\":\"$I\",\"type\":\"call\","
    "\"manager_id\":\"$M\",\"ts\":true" CALL "}"};
static const char *const inv_missing[] = {
    "{\"type\":\"email\",\"manager_id\":\"$M\",\"ts\":\"$T\",\"direction\":\"outbound\"}",
    "{\"event_id\":\"$I\",\"manager_id\":\"$M\",\"ts\":\"$T\",\"direction\":\"outbound\"}",
    "{\"event_id\":\"$I\",\"type\":\"email\",\"ts\":\"$T\",\"direction\":\"outbound\"}",
    "{\"event_id\":\"$I\",\"type\":\"email\",\"manager_id\":\"$M\",\"direction\":\"outbound\"}",
    HEAD ",\"status\":\"connected\",\"duration_s\":5}", HEAD ",\"direction\":\"inbound\"}",
    EHEAD "}",
    "{\"event_id\":\"$I\",\"type\":\"meeting\",\"manager_id\":\"$M\",\"ts\":\"$T\",\"kind\":\"first\"}",
    DHEAD ",\"stage\":\"lead\"}", DHEAD ",\"deal_id\":\"$I\",\"amount\":10}", "{}"};
static const char *const inv_unknown_type[] = {
    "{\"event_id\":\"$I\",\"type\":\"sms\",\"manager_id\":\"$M\",\"ts\":\"$T\"}",
    "{\"event_id\":\"$I\",\"type\":\"Call\",\"manager_id\":\"$M\",\"ts\":\"$T\"" CALL "}",
    "{\"event_id\":\"$I\",\"type\":\"\",\"manager_id\":\"$M\",\"ts\":\"$T\"}",
    "{\"event_id\":\"$I\",\"type\":\"meeting_held\",\"manager_id\":\"$M\",\"ts\":\"$T\"}"};
static const char *const inv_unknown_stage[] = {
    DHEAD ",\"deal_id\":\"$I\",\"stage\":\"prospecting\"}",
    DHEAD ",\"deal_id\":\"$I\",\"stage\":\"Won\",\"amount\":100}",
    DHEAD ",\"deal_id\":\"$I\",\"stage\":\"\"}"};
static const char *const inv_bad_manager[] = {
    "{\"event_id\":\"$I\",\"type\":\"email\",\"manager_id\":\"ivan ov\",\"ts\":\"$T\","
    "\"direction\":\"outbound\"}",
    "{\"event_id\":\"$I\",\"type\":\"email\",\"manager_id\":\"$M!\",\"ts\":\"$T\","
    "\"direction\":\"outbound\"}",
    "{\"event_id\":\"$I\",\"type\":\"email\",\"manager_id\":\"$L\",\"ts\":\"$T\","
    "\"direction\":\"outbound\"}",
    "{\"event_id\":\"$I\",\"type\":\"email\",\"manager_id\":\"\",\"ts\":\"$T\","
    "\"direction\":\"outbound\"}",
    "{\"event_id\":\"$I\",\"type\":\"email\",\"manager_id\":\"\xd0\xb8\xd0\xb2\xd0\xb0\xd0\xbd\","
    "\"ts\":\"$T\",\"direction\":\"outbound\"}",
    "{\"event_id\":\"$I\",\"type\":\"email\",\"manager_id\":\"ivan/ov\",\"ts\":\"$T\","
    "\"direction\":\"outbound\"}",
    DHEAD ",\"deal_id\":\"deal #$I\",\"stage\":\"lead\"}"};
static const char *const inv_bad_id[] = {
    "{\"event_id\":\"\",\"type\":\"email\",\"manager_id\":\"$M\",\"ts\":\"$T\",\"direction\":\"inbound\"}",
    "{\"event_id\":\"$B\",\"type\":\"email\",\"manager_id\":\"$M\",\"ts\":\"$T\",\"direction\":\"inbound\"}",
    "{\"event_id\":\"$I\\u0007\",\"type\":\"email\",\"manager_id\":\"$M\",\"ts\":\"$T\",\"direction\":\"inbound\"}",
    "{\"event_id\":\"$I\x7f\",\"type\":\"email\",\"manager_id\":\"$M\",\"ts\":\"$T\",\"direction\":\"inbound\"}",
    "{\"event_id\":\"$I\\tx\",\"type\":\"email\",\"manager_id\":\"$M\",\"ts\":\"$T\",\"direction\":\"inbound\"}",
    "{\"event_id\":\"$I\\u00e9\",\"type\":\"email\",\"manager_id\":\"$M\",\"ts\":\"$T\",\"direction\":\"inbound\"}"};
static const char *const inv_bad_ts[] = {
    "2026-13-01T10:00:00Z", "2026-11-16 09:00:00Z", "2026-11-16T09:00:00", "2026-11-16t09:00:00z",
    "2026-11-16T23:59:60Z", "yesterday", "", "2026-02-30T10:00:00Z", "2026-11-16T09:00:00+3:00",
    "16.11.2026 09:00", "2026-11-16T09:00Z", "2026-11-16T25:00:00+03:00"};
static const char *const inv_future[] = {
    "{\"event_id\":\"$I\",\"type\":\"email\",\"manager_id\":\"$M\",\"ts\":\"2099-01-01T00:00:00Z\",\"direction\":\"outbound\"}",
    "{\"event_id\":\"$I\",\"type\":\"email\",\"manager_id\":\"$M\",\"ts\":4102444800000,\"direction\":\"outbound\"}",
    "{\"event_id\":\"$I\",\"type\":\"email\",\"manager_id\":\"$M\",\"ts\":\"2098-06-01T12:00:00+03:00\",\"direction\":\"outbound\"}"};
static const char *const inv_float_int[] = {
    HEAD CALL ",\"duration_s\":60.0}", HEAD CALL ",\"duration_s\":6e1}",
    "{\"event_id\":\"$I\",\"type\":\"call\",\"manager_id\":\"$M\",\"ts\":$E.0" CALL "}",
    "{\"event_id\":\"$I\",\"type\":\"call\",\"manager_id\":\"$M\",\"ts\":1.7e12" CALL "}"};
static const char *const inv_duration[] = {HEAD CALL ",\"duration_s\":86401}",
    HEAD CALL ",\"duration_s\":-1}", HEAD CALL ",\"duration_s\":100000000000}"};
static const char *const inv_utf8[] = {
    HEAD CALL ",\"counterpart\":\"\xff\xfe\"}",
    "{\"event_id\":\"$I\",\"type\":\"call\",\"manager_id\":\"iv\xc3\x28n\",\"ts\":\"$T\"" CALL "}",
    EHEAD ",\"direction\":\"outbound\",\"counterpart\":\"a@b.ru\xe2\x82\"}",
    EHEAD ",\"direction\":\"outbound\",\"counterpart\":\"ab\xe2\"}"};
static const char *const inv_nul[] = {
    "{\"event_id\":\"$I\",\"type\":\"call\",\"manager_id\":\"$M$0x\",\"ts\":\"$T\"" CALL "}",
    "{\"event_id\":\"\\u0000$I\",\"type\":\"email\",\"manager_id\":\"$M\",\"ts\":\"$T\",\"direction\":\"inbound\"}",
    EHEAD ",\"direction\":\"inbound\"}$0", "$0" EHEAD ",\"direction\":\"inbound\"}"};
static const char *const inv_null_required[] = {
    "{\"event_id\":\"$I\",\"type\":null,\"manager_id\":\"$M\",\"ts\":\"$T\"}",
    "{\"event_id\":\"$I\",\"type\":\"email\",\"manager_id\":null,\"ts\":\"$T\",\"direction\":\"inbound\"}",
    "{\"event_id\":null,\"type\":\"email\",\"manager_id\":\"$M\",\"ts\":\"$T\",\"direction\":\"inbound\"}",
    "{\"event_id\":\"$I\",\"type\":\"email\",\"manager_id\":\"$M\",\"ts\":null,\"direction\":\"inbound\"}",
    EHEAD ",\"direction\":null}", HEAD ",\"direction\":\"outbound\",\"status\":null}",
    DHEAD ",\"deal_id\":\"$I\",\"stage\":null}", DHEAD ",\"deal_id\":null,\"stage\":\"lead\"}"};
static const char *const inv_oversize[] = {HEAD CALL ",\"note\":\"$P\"}"};

static const struct {
    const char *const *t;
    size_t n;
} inv_kinds[] = {
#define K(a) {a, NELEM(a)}
    K(inv_bad_json), K(inv_non_object), K(inv_wrong_type), K(inv_missing), K(inv_unknown_type),
    K(inv_unknown_stage), K(inv_bad_manager), K(inv_bad_id), K(inv_bad_ts), K(inv_future),
    K(inv_float_int), K(inv_duration), K(inv_utf8), K(inv_nul), K(inv_null_required),
#undef K
};
#define INV_BAD_TS 8 /* index of inv_bad_ts: its entries are ts values, not messages */

static void expand(gen_t *g, const char *t, const struct mgr *m, int64_t ts) {
    obuf_t *b = &g->out;
    for (const char *p = t; *p; p++) {
        if (*p != '$' || !p[1]) {
            ob_chr(b, *p);
            continue;
        }
        switch (*++p) {
        case 'I': ob_str(b, g->prefix); OB_LIT(b, "-x"); ob_u64(b, g->inv_seq); break;
        case 'M': ob_str(b, m->id); break;
        case 'T': put_rfc3339(b, ts, 0, 0, 0); break;
        case 'E': ob_u64(b, (uint64_t)ts); break;
        case '0': ob_chr(b, '\0'); break;
        case 'L': ob_rep(b, 'm', EVENT_MANAGER_MAX + 1); break;
        case 'B': ob_rep(b, 'e', EVENT_ID_MAX + 1); break;
        case 'P': { /* the whole message ends 64 bytes over the limit */
            size_t target = g->max_message_bytes + 64, tail = strlen(p + 1);
            if (b->len + tail < target)
                ob_rep(b, 'x', target - b->len - tail);
            break;
        }
        default: ob_chr(b, '$'); ob_chr(b, *p); break;
        }
    }
}

/* Formats the next invalid message (rotating over kinds, then variants) into g->out. */
static void gen_format_invalid(gen_t *g, const struct spec *s, int64_t live_ts,
                               unsigned oversize_every) {
    const struct mgr *m = &g->mgrs[s->mgr];
    uint64_t i = g->inv_seq++;
    int64_t ts = live_ts ? live_ts : s->ts_ms;
    size_t kind = (size_t)(i % NELEM(inv_kinds));
    size_t var = (size_t)(i / NELEM(inv_kinds) % inv_kinds[kind].n);
    g->out.len = 0;
    if (oversize_every && i % oversize_every == oversize_every - 1) {
        expand(g, inv_oversize[0], m, ts);
    } else if (kind == INV_BAD_TS) {
        expand(g, "{\"event_id\":\"$I\",\"type\":\"email\",\"manager_id\":\"$M\",\"ts\":\"", m, ts);
        ob_str(&g->out, inv_bad_ts[var]);
        OB_LIT(&g->out, "\",\"direction\":\"inbound\"}");
    } else {
        expand(g, inv_kinds[kind].t[var], m, ts);
    }
}

/* ---- setup ------------------------------------------------------------------------------- */

struct opts;
static void gen_free(gen_t *g);

static period_zone_t *zone_get(gen_t *g, const char *name, char *err, size_t errlen) {
    for (size_t i = 0; i < g->n_zones; i++)
        if (strcmp(period_zone_name(g->zones[i]), name) == 0)
            return g->zones[i];
    period_zone_t *z = period_zone_open(name, err, errlen);
    if (z)
        g->zones[g->n_zones++] = z;
    return z;
}

static bool id_taken(const gen_t *g, const char *id) {
    for (size_t i = 0; i < g->n_mgrs; i++)
        if (strcmp(g->mgrs[i].id, id) == 0)
            return true;
    return false;
}

/* Groups the managers by team (n_slots: configured teams + none), for reassignment. */
static int teams_index(gen_t *g, size_t n_slots) {
    g->team_start = calloc(n_slots, sizeof(*g->team_start));
    g->team_count = calloc(n_slots, sizeof(*g->team_count));
    g->team_members = calloc(g->n_mgrs + 1, sizeof(*g->team_members));
    if (!g->team_start || !g->team_count || !g->team_members)
        return -1;
    for (size_t i = 0; i < g->n_mgrs; i++)
        g->team_count[g->mgrs[i].team]++;
    for (size_t t = 1; t < n_slots; t++)
        g->team_start[t] = g->team_start[t - 1] + g->team_count[t - 1];
    memset(g->team_count, 0, n_slots * sizeof(*g->team_count)); /* refilled below */
    for (size_t i = 0; i < g->n_mgrs; i++) {
        struct mgr *m = &g->mgrs[i];
        m->team_pos = g->team_count[m->team]++;
        g->team_members[g->team_start[m->team] + m->team_pos] = (uint32_t)i;
    }
    return 0;
}

/* Builds the roster from cfg (NULL: built-in defaults) plus invented managers. */
static gen_t *gen_setup(const config_t *cfg, int n_managers, uint64_t seed, const char *prefix,
                        char *err, size_t errlen) {
    gen_t *g = calloc(1, sizeof(*g));
    size_t n_teams = cfg ? cfg->n_teams : 0, n_cfg_mgrs = cfg ? cfg->n_managers : 0;
    size_t want = (size_t)n_managers > n_cfg_mgrs ? (size_t)n_managers : n_cfg_mgrs;
    const char *global_zone = cfg && cfg->time_zone ? cfg->time_zone : "UTC";
    unsigned next = 1; /* of invented ids */
    if (!g)
        goto oom;
    rng_seed(&g->rng, seed);
    g->seed = seed;
    snprintf(g->prefix, sizeof(g->prefix), "%s", prefix);
    g->max_message_bytes = cfg && cfg->max_message_bytes ? cfg->max_message_bytes : 1048576;
    g->out.cap = g->max_message_bytes + 65536;
    g->zones = calloc(n_teams + 1, sizeof(*g->zones));
    g->mgrs = calloc(want, sizeof(*g->mgrs));
    g->n_stages = cfg ? cfg->n_stages : NELEM(default_stages);
    g->n_domains = cfg ? cfg->n_internal_domains : NELEM(default_domains);
    g->n_prefixes = cfg ? cfg->n_internal_phone_prefixes : NELEM(default_prefixes);
    g->stages = calloc(g->n_stages + 1, sizeof(char *));
    g->domains = calloc(g->n_domains + 1, sizeof(char *));
    g->prefixes = calloc(g->n_prefixes + 1, sizeof(char *));
    g->out.p = malloc(g->out.cap);
    if (!g->zones || !g->mgrs || !g->stages || !g->domains || !g->prefixes || !g->out.p)
        goto oom;
    for (size_t i = 0; i < g->n_stages; i++)
        g->stages[i] = cfg ? cfg->stages[i].name : default_stages[i];
    for (size_t i = 0; i < g->n_domains; i++)
        g->domains[i] = cfg ? cfg->internal_domains[i] : default_domains[i];
    for (size_t i = 0; i < g->n_prefixes; i++)
        g->prefixes[i] = cfg ? cfg->internal_phone_prefixes[i] : default_prefixes[i];

    /* Deals walk the non-terminal stages in order and end in "won" or "lost" (or the
     * terminal stages with p 1 and p 0 when a configuration has no such names; the names
     * win, since the daemon's deals_won/deals_lost count entries into them). */
    int won_p = -1, lost_p = -1;
    g->won = g->lost = -1;
    for (size_t i = 0; i < g->n_stages && i < 127; i++) {
        bool terminal = cfg ? cfg->stages[i].terminal : i >= 5;
        double p = cfg ? cfg->stages[i].p : (i == 5 ? 1.0 : 0.0);
        if (!terminal && g->n_open < (int)NELEM(g->open_stages))
            g->open_stages[g->n_open++] = (int)i;
        else if (terminal && !strcmp(g->stages[i], "won"))
            g->won = (int)i;
        else if (terminal && !strcmp(g->stages[i], "lost"))
            g->lost = (int)i;
        else if (terminal && won_p < 0 && p >= 1.0)
            won_p = (int)i;
        else if (terminal && lost_p < 0 && p <= 0.0)
            lost_p = (int)i;
    }
    if (g->won < 0)
        g->won = won_p;
    if (g->lost < 0)
        g->lost = lost_p;

    if (!zone_get(g, global_zone, err, errlen))
        goto fail;
    for (size_t i = 0; i < want; i++) {
        struct mgr *m = &g->mgrs[i];
        const char *team_zone = global_zone;
        size_t slot = n_teams; /* none */
        if (i < n_cfg_mgrs) {
            const struct config_team *t = config_team_find(cfg, cfg->managers[i].team);
            snprintf(m->id, sizeof(m->id), "%s", cfg->managers[i].id);
            if (t)
                slot = (size_t)(t - cfg->teams);
        } else { /* invented: spread over the teams and "unassigned" */
            do
                snprintf(m->id, sizeof(m->id), "mgr%03u", next++);
            while (id_taken(g, m->id));
            slot = (i - n_cfg_mgrs) % (n_teams + 1);
        }
        if (slot < n_teams && cfg->teams[slot].time_zone)
            team_zone = cfg->teams[slot].time_zone;
        m->team = (uint32_t)slot;
        m->segment = segment_of(slot < n_teams ? cfg->teams[slot].name : NULL);
        m->zone = zone_get(g, team_zone, err, errlen);
        if (!m->zone)
            goto fail;
        m->intensity = rng_range(&g->rng, 55, 145);
        m->connect_pct = rng_range(&g->rng, 30, 40);
        g->n_mgrs++;
    }
    if (teams_index(g, n_teams + 1))
        goto oom;
    return g;
oom:
    snprintf(err, errlen, "out of memory");
fail:
    gen_free(g);
    return NULL;
}

static void gen_free(gen_t *g) {
    if (!g)
        return;
    for (size_t i = 0; i < g->n_zones; i++)
        period_zone_free(g->zones[i]);
    free(g->zones);
    free(g->mgrs);
    free(g->stages);
    free(g->domains);
    free(g->prefixes);
    free(g->specs);
    free(g->deals);
    free(g->team_members);
    free(g->team_start);
    free(g->team_count);
    free(g->out.p);
    free(g);
}

#define OUT_CAP (3u << 20)   /* room for the oversize message (> 1 MiB) */
#define DUP_SLOTS 4096
#define DUP_SLOT_BYTES 1024
#define MAX_PARTITIONS 4096

struct opts {
    const char *brokers, *topic, *config, *out, *group, *start, *id_prefix;
    uint64_t seed, count;
    int days, managers;
    double rate, dup_frac, invalid_frac, unkeyed_frac;
    int64_t lag_max;
    unsigned oversize_every;
    bool live, stats;
    bool deal_key_manager;     /* --deal-key manager: deal events keyed like activities */
    char *xprops[32];          /* -X key=value for the producer, applied last */
    int n_xprops;
};

struct stats {
    uint64_t produced, valid, dups, invalid, unkeyed, internal, bytes, failed;
    uint64_t by_type[4];
    uint64_t deals_new, deals_won, deals_lost, reassigned, reopened;
};

struct sink {
    FILE *file;                /* --out */
    rd_kafka_t *rk;            /* otherwise */
    rd_kafka_topic_t *rkt;
    rd_kafka_t *lag_rk;        /* --lag-max: consumer handle for committed offsets */
    int32_t partitions;
    int64_t lag_budget;        /* messages we may still send before measuring lag */
    uint64_t since_poll;
};

static volatile uint64_t g_failed;
static volatile sig_atomic_t g_stop; /* SIGINT/SIGTERM: stop generating, deliver, report */

static void on_signal(int sig) {
    (void)sig;
    g_stop = 1;
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    (void)opaque;
    if (m->err) {
        if (g_failed < 5)
            fprintf(stderr, "kpi-gen: delivery failed: %s\n", rd_kafka_err2str(m->err));
        g_failed++;
    }
}

static int64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int set_conf(rd_kafka_conf_t *conf, const char *k, const char *v) {
    char err[512];
    if (rd_kafka_conf_set(conf, k, v, err, sizeof(err)) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "kpi-gen: %s=%s: %s\n", k, v, err);
        return -1;
    }
    return 0;
}

static int sink_open_kafka(struct sink *s, const struct opts *o, const gen_t *g) {
    char err[512], buf[32];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    /* Large compressed batches: the mock broker keeps only 5 MiB / 100,000 batches per
     * partition (see tools/devbroker.c), and real brokers like them too. Idempotence:
     * a retried batch is never written twice, so the log holds exactly what we count. */
    snprintf(buf, sizeof(buf), "%zu", g->max_message_bytes * 3 + 65536);
    if (set_conf(conf, "bootstrap.servers", o->brokers) ||
        set_conf(conf, "compression.codec", "zstd") || set_conf(conf, "linger.ms", "50") ||
        set_conf(conf, "batch.num.messages", "10000") ||
        set_conf(conf, "batch.size", "1000000") ||
        set_conf(conf, "queue.buffering.max.messages", "500000") ||
        set_conf(conf, "queue.buffering.max.kbytes", "2097151") ||
        set_conf(conf, "message.max.bytes", buf) ||
        set_conf(conf, "enable.idempotence", "true") ||
        set_conf(conf, "message.timeout.ms", "60000") ||
        set_conf(conf, "compression.level", "1") || set_conf(conf, "client.id", "kpi-gen")) {
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    for (int i = 0; i < o->n_xprops; i++) {
        char *eq = strchr(o->xprops[i], '=');
        int bad;
        if (!eq) {
            fprintf(stderr, "kpi-gen: -X %s: want key=value\n", o->xprops[i]);
            rd_kafka_conf_destroy(conf);
            return -1;
        }
        *eq = '\0';
        bad = set_conf(conf, o->xprops[i], eq + 1);
        *eq = '=';
        if (bad) {
            rd_kafka_conf_destroy(conf);
            return -1;
        }
    }
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    s->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (!s->rk) {
        fprintf(stderr, "kpi-gen: %s\n", err);
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    s->rkt = rd_kafka_topic_new(s->rk, o->topic, NULL);
    if (!s->rkt) {
        fprintf(stderr, "kpi-gen: topic: %s\n", rd_kafka_err2str(rd_kafka_last_error()));
        return -1;
    }
    if (o->lag_max <= 0)
        return 0;

    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(s->rk, 0, s->rkt, &md, 10000);
    if (!e && (md->topic_cnt != 1 || md->topics[0].err)) {
        e = md->topic_cnt == 1 ? md->topics[0].err : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
        rd_kafka_metadata_destroy(md);
    }
    if (e) {
        fprintf(stderr, "kpi-gen: metadata for %s: %s\n", o->topic, rd_kafka_err2str(e));
        return -1;
    }
    s->partitions = md->topics[0].partition_cnt;
    rd_kafka_metadata_destroy(md);
    if (s->partitions > MAX_PARTITIONS)
        s->partitions = MAX_PARTITIONS;

    conf = rd_kafka_conf_new();
    if (set_conf(conf, "bootstrap.servers", o->brokers) || set_conf(conf, "group.id", o->group) ||
        set_conf(conf, "enable.auto.commit", "false") || set_conf(conf, "log_level", "3")) {
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    /* Never subscribes: it only reads the group's committed offsets. */
    s->lag_rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    if (!s->lag_rk) {
        fprintf(stderr, "kpi-gen: %s\n", err);
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    return 0;
}

/* Messages written but not yet consumed by the group: end offsets minus committed
 * offsets (log start when none), plus what still sits in our own queue. -1 on error. */
static int64_t group_lag(struct sink *s, const char *topic) {
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(s->partitions);
    int64_t lag = rd_kafka_outq_len(s->rk);
    int64_t lo[MAX_PARTITIONS], hi[MAX_PARTITIONS];
    for (int32_t p = 0; p < s->partitions; p++) {
        if (rd_kafka_query_watermark_offsets(s->rk, topic, p, &lo[p], &hi[p], 5000)) {
            rd_kafka_topic_partition_list_destroy(list);
            return -1;
        }
        rd_kafka_topic_partition_list_add(list, topic, p);
    }
    if (rd_kafka_committed(s->lag_rk, list, 5000)) {
        rd_kafka_topic_partition_list_destroy(list);
        return -1;
    }
    for (int i = 0; i < list->cnt; i++) {
        int32_t p = list->elems[i].partition;
        int64_t c = list->elems[i].offset;
        if (list->elems[i].err || c < lo[p])
            c = lo[p];
        lag += hi[p] > c ? hi[p] - c : 0;
    }
    rd_kafka_topic_partition_list_destroy(list);
    return lag;
}

/* Before each message: never let the group fall more than --lag-max behind. Lag is
 * measured only when the budget from the last measurement is spent, and a wait lasts
 * until the lag is down to 3/4 of the maximum, so each measurement buys a quarter of
 * lag_max messages at least. */
static void lag_wait(struct sink *s, const struct opts *o) {
    int64_t since;
    bool warned = false;
    if (!s->lag_rk || s->lag_budget-- > 0)
        return;
    since = mono_ms();
    for (;;) {
        int64_t lag = group_lag(s, o->topic);
        if (lag >= 0 && lag <= o->lag_max - o->lag_max / 4) {
            s->lag_budget = o->lag_max - lag - 1;
            return;
        }
        if (!warned && mono_ms() - since > 60000) {
            fprintf(stderr, "kpi-gen: group %s consumed too little for 60 s (lag %" PRId64
                            "); does it commit offsets to Kafka?\n", o->group, lag);
            warned = true;
        }
        rd_kafka_poll(s->rk, 50);
    }
}

static int sink_write(struct sink *s, const char *key, size_t klen, const char *p, size_t n) {
    if (s->file) {
        if (klen && fwrite(key, 1, klen, s->file) != klen)
            return -1;
        if (putc('\t', s->file) == EOF || (n && fwrite(p, 1, n, s->file) != n) ||
            putc('\n', s->file) == EOF)
            return -1;
        return 0;
    }
    for (;;) {
        if (rd_kafka_produce(s->rkt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, (void *)p, n,
                             klen ? key : NULL, klen, NULL) == 0)
            break;
        if (rd_kafka_last_error() != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            fprintf(stderr, "kpi-gen: produce: %s\n", rd_kafka_err2str(rd_kafka_last_error()));
            return -1;
        }
        rd_kafka_poll(s->rk, 50);
    }
    if ((++s->since_poll & 1023) == 0) /* serves delivery reports; per message it costs */
        rd_kafka_poll(s->rk, 0);
    return 0;
}

/* Waits for every delivery report. Returns -1 when any delivery failed or they stall. */
static int sink_close(struct sink *s) {
    int rc = 0;
    if (s->file) {
        rc = (fflush(s->file) || (s->file != stdout && fclose(s->file))) ? -1 : 0;
        if (rc)
            fprintf(stderr, "kpi-gen: write: %s\n", strerror(errno));
        return rc;
    }
    if (!s->rk)
        return 0;
    int last = -1, stalled_ms = 0;
    while (rd_kafka_outq_len(s->rk) > 0 && stalled_ms < 60000) {
        int q = rd_kafka_outq_len(s->rk);
        stalled_ms = q == last ? stalled_ms + 100 : 0;
        last = q;
        rd_kafka_flush(s->rk, 100);
    }
    if (rd_kafka_outq_len(s->rk) > 0) {
        fprintf(stderr, "kpi-gen: %d messages undelivered after 60 s without progress\n",
                rd_kafka_outq_len(s->rk));
        g_failed += (uint64_t)rd_kafka_outq_len(s->rk);
        rc = -1;
    }
    if (g_failed)
        rc = -1;
    if (s->lag_rk) {
        rd_kafka_destroy(s->lag_rk);
    }
    rd_kafka_topic_destroy(s->rkt);
    rd_kafka_destroy(s->rk);
    return rc;
}

/* ---- the main loop ----------------------------------------------------------------- */

struct dup_ring {
    char *slots;                   /* DUP_SLOTS x DUP_SLOT_BYTES, owned here */
    uint16_t klen[DUP_SLOTS];
    uint16_t len[DUP_SLOTS];
    size_t n, next;
};

static uint64_t frac_threshold(double f) {
    if (f <= 0)
        return 0;
    if (f >= 1)
        return UINT64_MAX;
    return (uint64_t)(f * 18446744073709551616.0);
}

static void stats_count(struct stats *st, const struct spec *sp, bool internal) {
    st->valid++;
    st->by_type[sp->type]++;
    st->internal += internal;
    st->deals_new += (sp->deal_flags & DF_NEW) != 0;
    st->deals_won += (sp->deal_flags & DF_WON) != 0;
    st->deals_lost += (sp->deal_flags & DF_LOST) != 0;
    st->reassigned += (sp->deal_flags & DF_REASSIGNED) != 0;
    st->reopened += (sp->deal_flags & DF_REOPENED) != 0;
}

/* The message key of a valid deal event: its deal id, so one deal's events stay in one
 * partition in order even when the deal changes hands. Returns the key length. */
static size_t deal_key(const gen_t *g, const struct spec *sp, char *buf, size_t cap) {
    obuf_t b = {buf, 0, cap};
    ob_str(&b, g->prefix);
    OB_LIT(&b, "-D");
    ob_u64(&b, sp->deal_num);
    return b.len;
}

static int run(gen_t *g, const struct opts *o, struct sink *s, struct stats *st) {
    struct dup_ring ring = {0};
    const uint64_t dup_thr = frac_threshold(o->dup_frac);
    const uint64_t inv_thr = frac_threshold(o->invalid_frac);
    const uint64_t nokey_thr = frac_threshold(o->unkeyed_frac);
    const uint64_t limit = o->count ? o->count : UINT64_MAX;
    const int64_t t0 = mono_ms();
    int rc = 0;

    if (dup_thr && !(ring.slots = malloc((size_t)DUP_SLOTS * DUP_SLOT_BYTES))) {
        fprintf(stderr, "kpi-gen: out of memory\n");
        return -1;
    }
    for (int day = 0; (o->days == 0 || day < o->days) && st->produced < limit && rc == 0 && !g_stop;
         day++) {
        size_t n = gen_day(g, day);
        for (size_t i = 0; i < n && st->produced < limit && rc == 0 && !g_stop;) {
            const struct spec *sp = &g->specs[i];
            const char *key = g->mgrs[sp->mgr].id;
            size_t klen = strlen(key);
            char dkey[sizeof(g->prefix) + 24];
            uint64_t r = rng_next(&g->rng);
            int64_t live_ts = o->live ? wall_ms() : 0;

            if (o->rate > 0) { /* paced: message k is due at t0 + k / rate */
                int64_t due = t0 + (int64_t)((double)st->produced * 1000.0 / o->rate);
                int64_t now;
                /* rd_kafka_poll returns early when a delivery report arrives: wait again. */
                while ((now = mono_ms()) < due) {
                    if (s->rk)
                        rd_kafka_poll(s->rk, (int)(due - now));
                    else
                        nanosleep(&(struct timespec){(due - now) / 1000, ((due - now) % 1000) * 1000000L}, NULL);
                }
            }
            if (r < dup_thr && ring.n > 0) {
                size_t k = rng_below(&g->rng, (uint32_t)ring.n);
                const char *slot = ring.slots + k * DUP_SLOT_BYTES;
                rc = sink_write(s, slot, ring.klen[k], slot + ring.klen[k], ring.len[k]);
                st->dups++;
                st->bytes += ring.len[k];
            } else {
                bool invalid = r >= dup_thr && r - dup_thr < inv_thr, stored = false;
                bool deal = !invalid && sp->type == EVENT_DEAL_STAGE;
                if (invalid) {
                    gen_format_invalid(g, sp, live_ts, o->oversize_every);
                    st->invalid++;
                } else {
                    stats_count(st, sp, gen_format_valid(g, sp, live_ts));
                    i++;
                    stored = ring.slots != NULL;
                }
                if (deal && !o->deal_key_manager) {
                    klen = deal_key(g, sp, dkey, sizeof(dkey));
                    key = dkey;
                }
                /* deal events draw too (and ignore it): --deal-key leaves the stream as is */
                if (rng_next(&g->rng) < nokey_thr && !deal) {
                    klen = 0;
                    st->unkeyed++;
                }
                if (stored && klen + g->out.len <= DUP_SLOT_BYTES) {
                    char *slot = ring.slots + ring.next * DUP_SLOT_BYTES;
                    memcpy(slot, key, klen);
                    memcpy(slot + klen, g->out.p, g->out.len);
                    ring.klen[ring.next] = (uint16_t)klen;
                    ring.len[ring.next] = (uint16_t)g->out.len;
                    ring.next = (ring.next + 1) % DUP_SLOTS;
                    if (ring.n < DUP_SLOTS)
                        ring.n++;
                }
                rc = sink_write(s, key, klen, g->out.p, g->out.len);
                st->bytes += g->out.len;
            }
            st->produced++;
            lag_wait(s, o);
        }
    }
    free(ring.slots);
    return rc;
}

/* ---- arguments ----------------------------------------------------------------------- */

static void usage(FILE *f) {
    fprintf(f,
            "usage: kpi-gen [-b brokers] [-t topic] [-c config] [--out FILE|-] [--seed N]\n"
            "               [--count N | --days D] [--start YYYY-MM-DD] [--managers N]\n"
            "               [--rate EPS] [--live] [--dup-frac F] [--invalid-frac F]\n"
            "               [--unkeyed-frac F] [--oversize-every N] [--id-prefix P]\n"
            "               [--deal-key deal|manager] [--lag-max N --group G]\n"
            "               [-X librdkafka.property=value]... [--stats]\n");
}

static int parse_u64(const char *s, uint64_t max, uint64_t *out) {
    char *end;
    unsigned long long v;
    if (!s || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || *end || v > max)
        return -1;
    *out = v;
    return 0;
}

static int parse_frac(const char *s, double max, double *out) {
    char *end;
    if (!s)
        return -1;
    errno = 0;
    *out = strtod(s, &end);
    return (errno || *end || end == s || !(*out >= 0 && *out <= max)) ? -1 : 0;
}

static int parse_args(int argc, char **argv, struct opts *o) {
    uint64_t v;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        int used = 1;
        if (!strcmp(a, "-b")) o->brokers = val;
        else if (!strcmp(a, "-t")) o->topic = val;
        else if (!strcmp(a, "-c")) o->config = val;
        else if (!strcmp(a, "--out")) o->out = val;
        else if (!strcmp(a, "--group")) o->group = val;
        else if (!strcmp(a, "--start")) o->start = val;
        else if (!strcmp(a, "--id-prefix")) o->id_prefix = val;
        else if (!strcmp(a, "--deal-key")) {
            if (!val || (strcmp(val, "deal") && strcmp(val, "manager"))) return -1;
            o->deal_key_manager = !strcmp(val, "manager");
        }
        else if (!strcmp(a, "-X") && val && o->n_xprops < (int)NELEM(o->xprops))
            o->xprops[o->n_xprops++] = argv[i + 1];
        else if (!strcmp(a, "--seed")) { if (parse_u64(val, UINT64_MAX, &o->seed)) return -1; }
        else if (!strcmp(a, "--count")) { if (parse_u64(val, UINT64_MAX / 2, &o->count)) return -1; }
        else if (!strcmp(a, "--days")) {
            if (parse_u64(val, 36500, &v) || v == 0) return -1;
            o->days = (int)v;
        } else if (!strcmp(a, "--managers")) {
            if (parse_u64(val, 65535, &v) || v == 0) return -1;
            o->managers = (int)v;
        } else if (!strcmp(a, "--lag-max")) {
            if (parse_u64(val, INT64_MAX / 2, &v) || v == 0) return -1;
            o->lag_max = (int64_t)v;
        } else if (!strcmp(a, "--oversize-every")) {
            if (parse_u64(val, UINT32_MAX, &v)) return -1;
            o->oversize_every = (unsigned)v;
        }
        else if (!strcmp(a, "--rate")) { if (parse_frac(val, 1e9, &o->rate)) return -1; }
        else if (!strcmp(a, "--dup-frac")) { if (parse_frac(val, 0.5, &o->dup_frac)) return -1; }
        else if (!strcmp(a, "--invalid-frac")) { if (parse_frac(val, 0.5, &o->invalid_frac)) return -1; }
        else if (!strcmp(a, "--unkeyed-frac")) { if (parse_frac(val, 1, &o->unkeyed_frac)) return -1; }
        else if (!strcmp(a, "--live")) { o->live = true; used = 0; }
        else if (!strcmp(a, "--stats")) { o->stats = true; used = 0; }
        else return -1;
        if (used && !val)
            return -1;
        i += used;
    }
    if (!o->count && !o->days && !o->live)
        o->days = 1; /* --live alone streams until stopped */
    if (o->lag_max && !o->group) {
        fprintf(stderr, "kpi-gen: --lag-max needs --group\n");
        return -1;
    }
    if (!o->out && !o->brokers) {
        fprintf(stderr, "kpi-gen: need -b brokers or --out FILE\n");
        return -1;
    }
    return 0;
}

static bool prefix_ok(const char *p) {
    size_t n = strlen(p);
    if (n == 0 || n > 40)
        return false;
    for (; *p; p++) /* ids must also fit the deal_id charset */
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '_' || *p == '-'))
            return false;
    return true;
}

/* Events of an average (intensity 100) manager's working day, from the model above. */
#define AVG_EVENTS_PER_MANAGER_DAY 103

static gen_t *gen_new(const config_t *cfg, const struct opts *o, char *err, size_t errlen) {
    char prefix[48];
    int managers = o->managers ? o->managers : cfg && cfg->n_managers ? 0 : 10;
    int64_t today = (int64_t)time(NULL) / 86400;
    int y, m, d;
    gen_t *g;

    if (o->id_prefix)
        snprintf(prefix, sizeof(prefix), "%s", o->id_prefix);
    else if (o->live) /* wall-clock ids: a second live run must not look like a replay */
        snprintf(prefix, sizeof(prefix), "g%" PRIu64 "t%" PRId64, o->seed, (int64_t)time(NULL));
    else
        snprintf(prefix, sizeof(prefix), "g%" PRIu64, o->seed);
    if (!prefix_ok(prefix)) {
        snprintf(err, errlen, "--id-prefix: 1..40 of [A-Za-z0-9._-]");
        return NULL;
    }
    g = gen_setup(cfg, managers, o->seed, prefix, err, errlen);
    if (!g)
        return NULL;
    if (o->start) {
        char tail;
        if (sscanf(o->start, "%4d-%2d-%2d%c", &y, &m, &d, &tail) != 3 || m < 1 || m > 12 ||
            d < 1 || d > 31 || y < 1970 || y > 9999) {
            snprintf(err, errlen, "--start: want YYYY-MM-DD");
            gen_free(g);
            return NULL;
        }
        g->start_day = period_days_from_civil(y, m, d);
    } else { /* end the simulated range about today, so no ts lies in the future */
        int64_t days = o->days;
        if (!days) { /* 10 % early: ts past the daemon's future skew would be invalid */
            uint64_t per_day = 0;
            for (size_t i = 0; i < g->n_mgrs; i++)
                per_day += (uint64_t)g->mgrs[i].intensity * AVG_EVENTS_PER_MANAGER_DAY / 100;
            days = (int64_t)(o->count * 11 / 10 / (per_day ? per_day : 1) + 1) * 7 / 5 + 2;
        }
        g->start_day = today - days + 1;
    }
    return g;
}

int main(int argc, char **argv) {
    struct opts o = {.topic = "kpi.events", .seed = 1, .unkeyed_frac = 0.01,
                     .oversize_every = 256};
    struct sink s = {0};
    struct stats st = {0};
    config_t *cfg = NULL;
    char err[4096];
    gen_t *g;
    int rc;

    if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        usage(stdout);
        return 0;
    }
    if (parse_args(argc, argv, &o)) {
        usage(stderr);
        return 2;
    }
    if (o.config && config_load_file(o.config, &cfg, err, sizeof(err))) {
        fprintf(stderr, "kpi-gen: %s:\n%s\n", o.config, err);
        return 2;
    }
    g = gen_new(cfg, &o, err, sizeof(err));
    if (!g) {
        fprintf(stderr, "kpi-gen: %s\n", err);
        config_free(cfg);
        return 2;
    }
    if (o.out) {
        s.file = strcmp(o.out, "-") ? fopen(o.out, "w") : stdout;
        if (!s.file || setvbuf(s.file, NULL, _IOFBF, 1 << 20)) {
            fprintf(stderr, "kpi-gen: %s: %s\n", o.out, strerror(errno));
            gen_free(g);
            config_free(cfg);
            return 1;
        }
    } else if (sink_open_kafka(&s, &o, g)) {
        sink_close(&s);
        gen_free(g);
        config_free(cfg);
        return 1;
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    int64_t t0 = mono_ms();
    rc = run(g, &o, &s, &st);
    if (sink_close(&s))
        rc = -1;
    double secs = (double)(mono_ms() - t0) / 1000.0;
    st.failed = g_failed;
    if (o.stats) {
        FILE *f = s.file == stdout ? stderr : stdout;
        fprintf(f,
                "produced=%" PRIu64 " valid=%" PRIu64 " duplicates=%" PRIu64 " invalid=%" PRIu64
                " unkeyed=%" PRIu64 " internal=%" PRIu64 " calls=%" PRIu64 " emails=%" PRIu64
                " meetings=%" PRIu64 " deal_stage=%" PRIu64 " failed=%" PRIu64 " bytes=%" PRIu64
                " seconds=%.3f rate=%.0f deals_new=%" PRIu64 " deals_won=%" PRIu64
                " deals_lost=%" PRIu64 " reassigned=%" PRIu64 " reopened=%" PRIu64 "\n",
                st.produced, st.valid, st.dups, st.invalid, st.unkeyed, st.internal,
                st.by_type[EVENT_CALL], st.by_type[EVENT_EMAIL], st.by_type[EVENT_MEETING],
                st.by_type[EVENT_DEAL_STAGE], st.failed, st.bytes, secs,
                secs > 0 ? (double)st.produced / secs : 0.0, st.deals_new, st.deals_won,
                st.deals_lost, st.reassigned, st.reopened);
        fflush(f);
    }
    gen_free(g);
    config_free(cfg);
    return rc ? 1 : 0;
}
