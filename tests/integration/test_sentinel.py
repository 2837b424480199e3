"""Redis high availability: kpid follows a Redis Sentinel setup (Debian's redis-sentinel)
to the new primary, with real failovers mid-stream.

A primary, two replicas and three sentinels (quorum 2, down-after 1 s). kpid is configured
with redis.sentinels and redis.master_name only, never with an address. Then, while it
consumes:
  1. the primary is killed (-9): the sentinels agree it is down and promote a replica.
     Replication is asynchronous, so the last transactions the old primary acknowledged
     may be missing on the new one; kpid must notice (the stored offsets and fence tokens
     went back) and consume those messages again, so nothing is lost or doubled;
  2. once the other replica follows the new primary, a planned switchover (SENTINEL
     FAILOVER) promotes it: kpid's connections to the demoted server are closed or
     answered READONLY, and it must follow.
The run must end with Redis (the final primary) equal to the clean run's (faultlib)."""

import os
import time

import pytest

import faultlib
import kpitest

SEED = 9191
PARTITIONS = 4
MASTER = "kpi-ha"


@pytest.fixture(scope="module")
def stream(tmp_path_factory):
    yield from faultlib.module_stream(tmp_path_factory, "sentinel-stream", seed=SEED, count=100000,
                                      partitions=PARTITIONS)


class Sentinel:
    """One redis-sentinel process on a free loopback port with its own config file (the
    sentinel rewrites it as it learns the topology)."""

    def __init__(self, workdir, primary_port):
        self.dir = workdir
        os.makedirs(self.dir, exist_ok=True)
        self.port = kpitest.free_port()
        self.conf = os.path.join(self.dir, "sentinel.conf")
        with open(self.conf, "w") as f:
            f.write("port %d\nbind 127.0.0.1\nprotected-mode no\ndaemonize no\ndir %s\n"
                    "sentinel monitor %s 127.0.0.1 %d 2\n"
                    "sentinel down-after-milliseconds %s 1000\n"
                    "sentinel failover-timeout %s 10000\n"
                    "sentinel parallel-syncs %s 1\n"
                    % (self.port, self.dir, MASTER, primary_port, MASTER, MASTER, MASTER))
        self.proc = kpitest.spawn(["/usr/bin/redis-sentinel", self.conf],
                                  os.path.join(self.dir, "sentinel.log"))
        kpitest.wait_for(lambda: self._ping(), 10, "redis-sentinel on port %d" % self.port)

    def client(self):
        return kpitest.redis_mod.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    def _ping(self):
        try:
            return self.client().ping()
        except kpitest.redis_mod.exceptions.RedisError:
            return False

    def primary_port(self):
        try:
            host_port = self.client().execute_command("SENTINEL", "get-master-addr-by-name", MASTER)
        except kpitest.redis_mod.exceptions.RedisError:
            return None
        return int(host_port[1]) if host_port else None

    def others(self):
        """How many other sentinels this one knows for the primary."""
        try:
            fields = self.client().execute_command("SENTINEL", "master", MASTER)
        except kpitest.redis_mod.exceptions.RedisError:
            return -1
        if isinstance(fields, dict):
            return int(fields.get("num-other-sentinels", -1))
        return int(fields[fields.index(b"num-other-sentinels") + 1])

    def close(self):
        kpitest.kill_process(self.proc)


def replica_synced(replica, primary_port):
    try:
        info = replica.client().info("replication")
    except kpitest.redis_mod.exceptions.RedisError:
        return False
    return (info.get("role") == "slave" and info.get("master_port") == primary_port and
            info.get("master_link_status") == "up")


def sentinels_agree(sentinels):
    """The primary's port when all sentinels name the same one, else None."""
    ports = {s.primary_port() for s in sentinels}
    return ports.pop() if len(ports) == 1 else None


def test_follows_sentinel_failovers(env, stream):
    n = len(stream.msgs)
    primary = env.redis()
    replicas = [env.redis(extra_args=["--replicaof", "127.0.0.1", str(primary.port)])
                for _ in range(2)]
    kpitest.wait_for(lambda: all(replica_synced(r, primary.port) for r in replicas), 20,
                     "the replicas to sync")
    by_port = {r.port: r for r in replicas}
    sentinels = []
    try:
        for i in range(3):
            sentinels.append(Sentinel(os.path.join(env.dir, "sentinel%d" % i), primary.port))
        # Each sentinel must know the others before a failover can be agreed on (they find
        # each other through the primary's hello channel).
        kpitest.wait_for(lambda: all(s.others() == 2 for s in sentinels), 30,
                         "the sentinels to discover each other")

        group, dlq = stream.new_run("sentinel")
        cfg = stream.config(primary, group, dlq, batch={"max_events": 10, "max_ms": 5})
        cfg["redis"].pop("host", None)
        cfg["redis"].pop("port", None)
        cfg["redis"]["sentinels"] = ["127.0.0.1:%d" % s.port for s in sentinels]
        cfg["redis"]["master_name"] = MASTER
        kpid = env.kpid(cfg, name="kpid-sentinel")
        sentinel_log = lambda: kpitest.tail(os.path.join(sentinels[0].dir, "sentinel.log"))

        # 1. The primary dies; the sentinels promote a replica.
        faultlib.wait_progress(primary.client(), n // 5, kpid, timeout=90)
        mark = kpid.log_size()
        primary.kill()
        kpitest.tally_fault("redis primary lost: sentinel failover")
        first = kpitest.wait_for(lambda: sentinels_agree(sentinels) in by_port and sentinels_agree(sentinels),
                                 30, "the sentinels to promote a replica", on_timeout=sentinel_log)
        c = by_port[first].client()
        at_failover = faultlib.check_consistent(c, group, "on the promoted replica")
        assert kpitest.consumed_count(at_failover["meta"]) < n, "the stream ended before the failover"
        kpid.wait_log(r"127\.0\.0\.1:%d" % first, timeout=30, start=mark)

        # 2. The other replica follows the new primary; a switchover promotes it.
        second = [p for p in by_port if p != first][0]
        kpitest.wait_for(lambda: replica_synced(by_port[second], first), 30,
                         "the other replica to follow the new primary", on_timeout=sentinel_log)
        s = faultlib.check_consistent(c, group, "after kpid followed the first failover")
        assert kpitest.consumed_count(s["meta"]) < n, "the stream ended before the switchover"
        mark = kpid.log_size()
        kpitest.wait_for(lambda: _failover(sentinels[0]), 20, "SENTINEL FAILOVER to be accepted")
        kpitest.tally_fault("redis switchover: SENTINEL FAILOVER")
        kpitest.wait_for(lambda: sentinels_agree(sentinels) == second, 30,
                         "the sentinels to promote port %d" % second, on_timeout=sentinel_log)
        kpid.wait_log(r"127\.0\.0\.1:%d" % second, timeout=30, start=mark)
        c = by_port[second].client()
        stream.wait_consumed(c, group, kpid, timeout=120)
        assert kpid.stop() == 0, kpid.log_tail()
        stream.check_run(c, group, dlq, "two sentinel failovers")
    finally:
        for s in sentinels:
            s.close()


def _failover(sentinel):
    try:
        return sentinel.client().execute_command("SENTINEL", "FAILOVER", MASTER)
    except kpitest.redis_mod.exceptions.ResponseError:
        return False  # NOGOODSLAVE while the new replica is not yet known to be in sync
