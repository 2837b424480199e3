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
The run must end with Redis (the final primary) equal to the clean run's (faultlib).
A second test demotes a primary by hand (REPLICAOF), which closes no connection, so kpid
sees only READONLY replies, behind a sentinel that requires a password."""

import os
import subprocess
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

    def __init__(self, workdir, primary_port, quorum=2, down_after_ms=1000, password=None):
        self.dir = workdir
        os.makedirs(self.dir, exist_ok=True)
        self.port = kpitest.free_port()
        self.password = password
        self.down_after_ms = down_after_ms
        self.conf = os.path.join(self.dir, "sentinel.conf")
        with open(self.conf, "w") as f:
            f.write("port %d\nbind 127.0.0.1\nprotected-mode no\ndaemonize no\ndir %s\n"
                    % (self.port, self.dir))
            if password:
                f.write("requirepass %s\n" % password)
        self.monitor(primary_port, quorum, write_to=self.conf)
        self.proc = kpitest.spawn(["/usr/bin/redis-sentinel", self.conf],
                                  os.path.join(self.dir, "sentinel.log"))
        kpitest.wait_for(lambda: self._ping(), 10, "redis-sentinel on port %d" % self.port)

    def monitor(self, primary_port, quorum=1, write_to=None):
        """Monitor MASTER at primary_port: in the config file before the start, or live
        (forgetting the primary it monitored before)."""
        settings = [("down-after-milliseconds", self.down_after_ms), ("failover-timeout", 10000),
                    ("parallel-syncs", 1)]
        if write_to:
            with open(write_to, "a") as f:
                f.write("sentinel monitor %s 127.0.0.1 %d %d\n" % (MASTER, primary_port, quorum))
                for k, v in settings:
                    f.write("sentinel %s %s %s\n" % (k, MASTER, v))
            return
        c = self.client()
        c.execute_command("SENTINEL", "REMOVE", MASTER)
        c.execute_command("SENTINEL", "MONITOR", MASTER, "127.0.0.1", primary_port, quorum)
        for k, v in settings:
            c.execute_command("SENTINEL", "SET", MASTER, k, v)

    def client(self):
        return kpitest.redis_mod.Redis(host="127.0.0.1", port=self.port, password=self.password,
                                       socket_timeout=5)

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


def test_demoted_primary_answering_readonly(env, stream, tmp_path):
    """A switchover nobody tells kpid about: the replica is promoted and the old primary
    made its replica by hand (REPLICAOF, as an operator or an orchestration tool does),
    then the sentinel is pointed at the new primary. Nothing closes kpid's connections to
    the old primary, so its next write there is answered READONLY: kpid must drop the
    connection and ask the sentinel again rather than retry on a replica forever. The
    sentinel requires a password (redis.sentinel_password_file). Afterwards kpictl,
    configured with the sentinel only, must read the new primary."""
    n = len(stream.msgs)
    primary = env.redis()
    replica = env.redis(extra_args=["--replicaof", "127.0.0.1", str(primary.port)])
    kpitest.wait_for(lambda: replica_synced(replica, primary.port), 20, "the replica to sync")
    # down-after 10 min: the sentinel must not fail over on its own during the test.
    sentinel = Sentinel(os.path.join(env.dir, "sentinel-ro"), primary.port, quorum=1,
                        down_after_ms=600000, password="sentinel-s3cret")
    try:
        secret = tmp_path / "sentinel-password"
        secret.write_text("sentinel-s3cret\n")
        group, dlq = stream.new_run("sentinel-readonly")
        cfg = stream.config(primary, group, dlq, batch={"max_events": 10, "max_ms": 5})
        cfg["redis"].pop("host", None)
        cfg["redis"].pop("port", None)
        cfg["redis"].update(sentinels=["127.0.0.1:%d" % sentinel.port], master_name=MASTER,
                            sentinel_password_file=str(secret))
        kpid = env.kpid(cfg, name="kpid-sentinel-readonly")
        faultlib.wait_progress(primary.client(), n // 5, kpid, timeout=90)

        mark = kpid.log_size()
        replica.client().execute_command("REPLICAOF", "NO", "ONE")
        sentinel.monitor(replica.port)
        primary.client().execute_command("REPLICAOF", "127.0.0.1", replica.port)
        kpitest.tally_fault("redis primary demoted by hand: READONLY")
        kpid.wait_log(r"READONLY.*a replica now; reconnecting", timeout=30, start=mark)
        kpid.wait_log(r"127\.0\.0\.1:%d" % replica.port, timeout=30, start=mark)
        # Alert delivery reads kpi:alerts with XREADGROUP (a write): it must move too.
        kpid.wait_log(r"redis 127\.0\.0\.1:%d: answering again; alert delivery resumed"
                      % replica.port, timeout=30, start=mark)
        c = replica.client()
        s = faultlib.check_consistent(c, group, "after kpid followed the demotion")
        assert kpitest.consumed_count(s["meta"]) < n, "the stream ended before kpid followed"
        stream.wait_consumed(c, group, kpid, timeout=120)
        assert kpid.stop() == 0, kpid.log_tail()
        stream.check_run(c, group, dlq, "a primary demoted under kpid")

        # kpictl finds the data through the sentinel alone (the old primary is gone).
        primary.kill()
        via_sentinel = env.write_config(kpitest.dashboard_config(cfg), "kpictl-sentinel.json")
        gone = kpitest.DELETE
        direct = env.write_config(kpitest.deep_merge(kpitest.dashboard_config(cfg), {"redis": {
            "host": "127.0.0.1", "port": replica.port, "sentinels": gone, "master_name": gone,
            "sentinel_password_file": gone}}), "kpictl-direct.json")
        for command in (["meta", "--json"], ["funnel", "--json"]):
            outs = [subprocess.run([kpitest.binary("kpictl"), "-c", path] + command,
                                   capture_output=True, text=True, timeout=30)
                    for path in (via_sentinel, direct)]
            assert [o.returncode for o in outs] == [0, 0], [o.stderr for o in outs]
            assert outs[0].stdout == outs[1].stdout, command
        (tmp_path / "wrong").write_text("not-it\n")
        wrong = kpitest.deep_merge(kpitest.dashboard_config(cfg),
                                   {"redis": {"sentinel_password_file": str(tmp_path / "wrong")}})
        r = subprocess.run([kpitest.binary("kpictl"), "-c", env.write_config(wrong, "kpictl-wrong.json"),
                            "meta"], capture_output=True, text=True, timeout=30)
        assert r.returncode != 0 and "sentinel 127.0.0.1:%d: AUTH:" % sentinel.port in r.stderr, r.stderr
    finally:
        sentinel.close()
