"""Least privilege: kpid runs as the Redis ACL user of config/redis-acl.conf, the
dashboard user reads but cannot write.

The shipped ACL file is loaded as it is (redis-server --aclfile), with only its password
placeholders replaced and the `default` user (which it turns off) left on for this
harness: the dumps and comparisons connect as `default`. kpid (counting, deals, alert
evaluation, alert delivery, --rebuild) and kpictl connect as the ACL users, so a command
or key kpid needs that the file does not grant shows up as a NOPERM in kpid's log, a
stalled stream or a failed rebuild. Only this file runs with the ACL (the rest of the
suite connects as `default`): one run of every code path that talks to Redis is enough
to pin the command list."""

import hashlib
import json
import os
import subprocess

import faultlib
import kpitest
from kpitest import ALERTS_TOPIC

ACL_FILE = os.path.join(kpitest.SRC or os.path.join(os.path.dirname(__file__), "..", ".."),
                        "config", "redis-acl.conf")
PASSWORD = "acl-test-pw"

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


def acl_file(workdir):
    """The shipped file with real password hashes; `default` on for the harness."""
    with open(ACL_FILE) as f:
        text = f.read()
    digest = hashlib.sha256(PASSWORD.encode()).hexdigest()
    out = []
    for line in text.splitlines():
        if line.startswith("user default "):
            line = "user default on nopass ~* &* +@all"
        for name in ("ADMIN", "KPID", "DASHBOARD"):
            line = line.replace("#%s_PASSWORD_SHA256" % name, "#" + digest)
        out.append(line)
    path = os.path.join(workdir, "users.acl")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")
    return path


def as_user(cfg, user, pw_file):
    return kpitest.deep_merge(cfg, {"redis": {"user": user, "password": None,
                                              "password_file": pw_file}})


def test_kpid_and_dashboard_as_acl_users(env):
    stream = faultlib.Stream(env, seed=7, count=3000, partitions=4).setup()
    redis = env.redis(extra_args=["--aclfile", acl_file(env.dir)])
    admin = redis.client()
    pw_file = os.path.join(env.dir, "redis-password")
    fd = os.open(pw_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, (PASSWORD + "\n").encode())
    os.close(fd)

    # Nothing else works for kpid: not the admin commands, not keys outside the prefix.
    kp = kpitest.redis_mod.Redis(host=redis.host, port=redis.port, username="kpid",
                                 password=PASSWORD, socket_timeout=5)
    for cmd in (("FLUSHALL",), ("CONFIG", "GET", "maxmemory"), ("KEYS", "*"),
                ("HSET", "other:x", "a", "1"), ("XGROUP", "DESTROY", "kpi:alerts", "kafka")):
        try:
            kp.execute_command(*cmd)
            raise AssertionError("kpid user may run %r" % (cmd,))
        except kpitest.redis_mod.exceptions.NoPermissionError:
            pass
    kp.close()

    group, dlq = stream.new_run("acl")
    cfg = as_user(stream.config(redis, group, dlq, **ALERTS), "kpid", pw_file)
    kpid = env.kpid(cfg, name="kpid-acl")
    stream.wait_consumed(admin, group, kpid)
    # An alert evaluation has run and its alerts went out through the stream's consumer
    # groups to the alerts topic (XADD, XREADGROUP, XACK as kpid).
    kpitest.wait_for(lambda: admin.hget("kpi:meta", "eval_ts") and admin.xlen("kpi:alerts") > 0,
                     30, "an alert evaluation that sent alerts", on_timeout=kpid.log_tail)
    sent = admin.xlen("kpi:alerts")
    kpitest.wait_topic_count(stream.broker.bootstrap, ALERTS_TOPIC, sent, kpid=kpid)
    assert kpid.stop() == 0, kpid.log_tail()
    assert "NOPERM" not in kpid.log(), kpid.log_tail()

    # Counts exact: equal to the clean run (no ACL, no alerts) but for what evaluation adds.
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
    dash = env.write_config(as_user(cfg, "dashboard", pw_file), "dashboard.json")
    r = subprocess.run([kpitest.binary("kpictl"), "-c", dash, "board", "--json"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert json.loads(r.stdout), r.stdout
    db = kpitest.redis_mod.Redis(host=redis.host, port=redis.port, username="dashboard",
                                 password=PASSWORD, socket_timeout=5)
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
    cfg = kpitest.default_config("127.0.0.1:9", 6379, redis={"password": "inline"})
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
