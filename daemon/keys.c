#include "keys.h"

#include <stdio.h>

static int keys_fit(int n, size_t size) { return (n < 0 || (size_t)n >= size) ? -1 : n; }

int keys_scope(char *buf, size_t size, const char *prefix, enum scope_kind kind, const char *scope,
               const char *period_id)
{
    /* Braces make the scope a Redis Cluster hash tag: one manager's keys share a slot. */
    switch (kind) {
    case SCOPE_MANAGER:
        return keys_fit(snprintf(buf, size, "%s:mgr:{%s}:%s", prefix, scope, period_id), size);
    case SCOPE_TEAM:
        return keys_fit(snprintf(buf, size, "%s:team:{%s}:%s", prefix, scope, period_id), size);
    case SCOPE_ORG:
    default:
        return keys_fit(snprintf(buf, size, "%s:org:%s", prefix, period_id), size);
    }
}

int keys_global(char *buf, size_t size, const char *prefix, const char *name)
{
    return keys_fit(snprintf(buf, size, "%s:%s", prefix, name), size);
}

int keys_offsets(char *buf, size_t size, const char *prefix, const char *group, const char *topic)
{
    return keys_fit(snprintf(buf, size, "%s:offsets:%s:%s", prefix, group, topic), size);
}

int keys_fence(char *buf, size_t size, const char *prefix, const char *group, const char *topic)
{
    return keys_fit(snprintf(buf, size, "%s:fence:%s:%s", prefix, group, topic), size);
}

int keys_deal(char *buf, size_t size, const char *prefix, const char *deal_id)
{
    return keys_fit(snprintf(buf, size, "%s:deal:{%s}", prefix, deal_id), size);
}

int keys_leaderboard(char *buf, size_t size, const char *prefix, const char *metric,
                     const char *period_id)
{
    return keys_fit(snprintf(buf, size, "%s:lb:%s:%s", prefix, metric, period_id), size);
}
