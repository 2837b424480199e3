"""Least privilege: kpid runs as the Redis ACL user of config/redis-acl.conf, the
dashboard user reads but cannot write.

Every redis-server of the suite loads the shipped ACL file (kpitest.acl_text(): test
passwords for its placeholders, `default` left on for the harness's own clients) and every
kpid of the suite connects as the `kpid` user, every kpictl as `dashboard`. This file
runs the code paths that talk to Redis together (counting, deals, alert evaluation, alert
delivery, --rebuild, kpictl), checks that there is no NOPERM anywhere, and checks what the
users must NOT be able to do."""

import json
import os
import subprocess

import faultlib
import kpitest
from kpitest import ALERTS_TOPIC

# Alert evaluation and delivery run: a target nobody reaches, over a calendar where every
# hour is working time, so the threshold rule fires on the wall clock whatever the hour.
ALERTS = {
    "calendar": {"work_days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                 "work_hours": ["00:00", "24:00"]},
    "targets": {"default": {"touches": {"d": 1000000}}},
    "alerts": {"clock": "wall", "eval_interval_s": 1,
               "rules": [{"name": "touches-day", "metric": "touches", "period": "d",
                          "min_elapsed_pct": 0}]},
}


def test_kpid_and_dashboard_as_acl_users(env):
    stream = faultlib.Stream(env, seed=7, count=3000, partitions=4).setup()
    redis = env.redis()
    admin = redis.client()

    # Nothing else works for kpid: not the admin commands, not keys outside the prefix.
    kp = kpitest.user_client(redis, kpitest.KPID_USER)
    for cmd in (("FLUSHALL",), ("CONFIG", "GET", "maxmemory"), ("KEYS", "*"),
                ("HSET", "other:x", "a", "1"), ("XGROUP", "DESTROY", "kpi:alerts", "kafka")):
        try:
            kp.execute_command(*cmd)
            raise AssertionError("kpid user may run %r" % (cmd,))
        except kpitest.redis_mod.exceptions.NoPermissionError:
            pass
    kp.close()

    group, dlq = stream.new_run("acl")
    cfg = stream.config(redis, group, dlq, **ALERTS)
    assert cfg["redis"]["user"] == kpitest.KPID_USER
    kpid = env.kpid(cfg, name="kpid-acl")
    stream.wait_consumed(admin, group, kpid)
    # kpid really is the `kpid` user (the harness's own clients are `default`).
    assert set(redis.connection_users()) == {kpitest.KPID_USER}, redis.connection_users()
    # An alert evaluation has run and its alerts went out through the stream's consumer
    # groups to the alerts topic (XADD, XREADGROUP, XACK as kpid).
    kpitest.wait_for(lambda: admin.hget("kpi:meta", "eval_ts") and admin.xlen("kpi:alerts") > 0,
                     30, "an alert evaluation that sent alerts", on_timeout=kpid.log_tail)
    sent = admin.xlen("kpi:alerts")
    kpitest.wait_topic_count(stream.broker.bootstrap, ALERTS_TOPIC, sent, kpid=kpid)
    assert kpid.stop() == 0, kpid.log_tail()
    assert "NOPERM" not in kpid.log(), kpid.log_tail()

    # Counts exact: equal to the clean run (no alerts) but for what evaluation adds.
    dump = kpitest.dump_redis(admin)
    faultlib.check_consistent(admin, group, "ACL run")
    stream.check_offsets(admin, group, "ACL run")
    ref = {k: v for k, v in stream.ref_dump.items() if k != "<rolling hour>"}
    assert kpitest.counter_view(dump) == kpitest.counter_view(ref)

    def without_evaluation(d):
        out = {k: v for k, v in d.items()
               if not k.endswith((":kpi", ":alerts", ":alertstate", ":digest"))}
        if "kpi:meta" in out:
            m = dict(out["kpi:meta"], value=dict(out["kpi:meta"]["value"]))
            m["value"].pop("eval_ts", None)
            out["kpi:meta"] = m
        return out
    faultlib.compare_dumps(without_evaluation(stream.ref_dump),
                           without_evaluation(faultlib.normalize(dump, group)), "ACL run")

    # The dashboard user: kpictl's reads work, a write is refused.
    dash = env.write_config(kpitest.dashboard_config(cfg), "dashboard.json")
    r = subprocess.run([kpitest.binary("kpictl"), "-c", dash, "board", "--json"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert json.loads(r.stdout), r.stdout
    db = kpitest.user_client(redis, kpitest.DASHBOARD_USER)
    assert db.hgetall("kpi:meta")[b"events_applied"] == dump["kpi:meta"]["value"]["events_applied"].encode()
    for cmd in (("HSET", "kpi:meta", "x", "1"), ("KEYS", "*"), ("DEL", "kpi:meta")):
        try:
            db.execute_command(*cmd)
            raise AssertionError("dashboard user may run %r" % (cmd,))
        except kpitest.redis_mod.exceptions.NoPermissionError:
            pass
    db.close()

    # --rebuild as the kpid user: SCAN, RENAME, UNLINK under both prefixes.
    r = subprocess.run([kpitest.binary("kpid"), "-c", env.write_config(cfg, "rebuild.json"),
                        "--rebuild"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "rebuild: switched:" in r.stderr, r.stderr[-3000:]
    assert "NOPERM" not in r.stderr, r.stderr[-3000:]
    assert not kpitest.SANITIZER_RE.search(r.stderr), r.stderr[-3000:]
    assert kpitest.counter_view(kpitest.dump_redis(admin)) == kpitest.counter_view(ref)


def test_world_readable_config_with_a_password_is_warned(env):
    """An inline secret in a file every user can read: a warning (not a refusal, which
    would stop setups that ran until now), at start and under --check-config."""
    cfg = kpitest.default_config("127.0.0.1:9", 6379,
                                 redis={"password": "inline", "password_file": kpitest.DELETE})
    path = env.write_config(cfg, "inline.json")
    warning = ("%s is readable by every user and holds redis.password; move the secret to "
               "redis.password_file (LoadCredential=) or chmod o-r %s" % (path, path))
    for mode, warned in ((0o644, True), (0o640, False)):
        os.chmod(path, mode)
        r = subprocess.run([kpitest.binary("kpid"), "-c", path, "--check-config"],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        assert (warning in r.stderr) == warned, (oct(mode), r.stderr)
        assert not kpitest.SANITIZER_RE.search(r.stderr), r.stderr


def test_missing_grant_is_named_in_the_log(env):
    """An ACL that lacks a command kpid needs: the log names the refusal (NOPERM and the
    command), not only the EXECABORT that ends the transaction, and kpid recovers by
    itself once the grant is back. HINCRBY is the first command of a partition claim."""
    stream = faultlib.Stream(env, seed=11, count=2000, partitions=2).setup()
    redis = env.redis()
    admin = redis.client()
    admin.execute_command("ACL", "SETUSER", kpitest.KPID_USER, "-hincrby")
    group, dlq = stream.new_run("acl-missing")
    kpid = env.kpid(stream.config(redis, group, dlq), name="kpid-acl-missing")
    line = kpid.wait_log(r"claiming partitions: NOPERM .*'hincrby'", timeout=60)
    assert line, kpid.log_tail()
    assert not faultlib.log_lines(kpid, r"claiming partitions: EXECABORT"), kpid.log_tail()
    admin.execute_command("ACL", "SETUSER", kpitest.KPID_USER, "+hincrby")
    stream.wait_consumed(admin, group, kpid)
    assert kpid.stop() == 0, kpid.log_tail()
    stream.check_run(admin, group, dlq, "a claim refused by the ACL, then granted")
