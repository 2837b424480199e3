"""Operations: the systemd unit (systemd-analyze verify and security), secrets read from
systemd credentials, SIGHUP reloads under load that change neither a counter nor an
offset, and repeated warnings summed up instead of flooding the journal."""

import configparser
import os
import re
import shutil
import signal
import subprocess
import time

import pytest

import faultlib
import kpitest

UNIT = os.path.join(kpitest.SRC, "systemd", "kpid.service")


def unit_with_built_binary(tmp_path):
    """The shipped unit with /usr/bin/kpid pointing at the binary under test: verify checks
    that every Exec command exists."""
    text = open(UNIT).read()
    assert "/usr/bin/kpid " in text
    path = tmp_path / "kpid.service"
    path.write_text(text.replace("/usr/bin/kpid ", kpitest.binary("kpid") + " "))
    return str(path)


def test_unit_verifies_without_a_warning(tmp_path):
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", unit_with_built_binary(tmp_path)],
                       capture_output=True, text=True, timeout=60)
    # verify exits 0 even for an unknown directive or value: any output is a finding.
    assert r.returncode == 0 and r.stdout.strip() == "" and r.stderr.strip() == "", r.stdout + r.stderr


def test_unit_security_exposure_at_most_2():
    r = subprocess.run(["systemd-analyze", "security", "--offline=yes", UNIT],
                       capture_output=True, text=True, timeout=60)
    m = re.search(r"Overall exposure level for kpid\.service: (\d+\.\d+)", r.stdout)
    assert m, r.stdout + r.stderr
    assert float(m.group(1)) <= 2.0, r.stdout


def test_unit_settings():
    p = configparser.ConfigParser(strict=False, interpolation=None)
    p.optionxform = str
    p.read(UNIT)
    s = p["Service"]
    assert s["Type"] == "notify"
    assert int(s["WatchdogSec"]) > 0
    assert s["Restart"] == "on-failure"
    assert s["DynamicUser"] == "yes" and s["User"] == "kpid"
    assert s["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert s["LoadCredential"] == "kpid:/etc/kpid/credentials"
    assert "--check-config" in s["ExecStartPre"]
    # No secret in the unit, whatever its form.
    body = "\n".join(l for l in open(UNIT) if not l.lstrip().startswith("#"))
    assert not re.search(r"(?i)password|sasl|secret|Environment=", body), body


def test_redis_password_from_the_credentials_directory(env, tmp_path):
    # kpid can only get in as the `kpid` ACL user with that user's password, read from
    # the credentials directory.
    redis = env.redis()
    broker = env.broker()
    pw = kpitest.ACL_PASSWORDS[kpitest.KPID_USER]
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "kpid_redis-password").write_text(pw + "\n")
    cfg = env.config(broker, redis)
    cfg["redis"]["password_file"] = "kpid_redis-password"
    path = env.write_config(cfg, "secret.json")
    # The file names the credential only; the password appears nowhere in it.
    assert pw not in open(path).read()
    kpid = env.kpid(path, wrapper=["env", "CREDENTIALS_DIRECTORY=%s" % creds])
    c = redis.client()
    ev = (b'{"event_id":"sec1","type":"email","manager_id":"ivanov",'
          b'"ts":"2026-11-20T10:00:00Z","direction":"outbound"}')
    n = len(kpitest.produce(broker.bootstrap, kpitest.EVENTS_TOPIC, [("ivanov", ev)]))
    kpitest.wait_consumed(c, n, kpid)
    assert set(redis.connection_users()) == {kpitest.KPID_USER}, redis.connection_users()
    assert c.hget("kpi:mgr:{ivanov}:d:2026-11-20", "emails") == b"1"
    kpid.stop()

    # Without the credentials directory the relative name is refused, saying what to do.
    r = subprocess.run([kpitest.binary("kpid"), "-c", path, "--check-config"],
                       capture_output=True, text=True, timeout=30,
                       env={k: v for k, v in os.environ.items() if k != "CREDENTIALS_DIRECTORY"})
    assert r.returncode == 2
    assert "$.redis.password_file: \"kpid_redis-password\" is relative but CREDENTIALS_DIRECTORY " \
           "is not set" in r.stdout + r.stderr


@pytest.fixture(scope="module")
def stream(tmp_path_factory):
    yield from faultlib.module_stream(tmp_path_factory, "ops-stream", seed=20261123, count=30000,
                                      partitions=4)


def test_reload_under_load_changes_no_counter(env, stream):
    """Ten SIGHUPs while a stream is consumed: the log level, the calendar and team leads
    change (nothing that changes what is counted or adds keys, so the clean run stays the
    reference), every third file is broken. The end state equals the clean run's exactly:
    no counter, offset or dedup id lost or doubled by the flushes a reload forces."""
    redis = env.redis()
    c = redis.client()
    group, dlq = stream.new_run("reload")
    cfg = stream.config(redis, group, dlq, batch={"max_events": 20, "max_ms": 5})
    kpid = env.kpid(cfg, name="kpid-reload")
    n = len(stream.msgs)
    faultlib.wait_progress(c, 1, kpid, timeout=60)
    consumed_at_first = None
    for i in range(10):
        bad = i % 3 == 2
        if bad:
            kpitest.write_config(kpid.config_path, dict(cfg, bogus_key=i))
        else:
            good = kpitest.deep_merge(cfg, {
                "log_level": ("debug", "info")[i % 2],
                "calendar": {"work_hours": ["0%d:00" % (i % 10), "18:00"],
                             "holidays": ["2026-12-%02d" % (i + 1)]},
                "teams": {"msk": {"lead": "m%02d" % (i % 15)}},
            })
            kpitest.write_config(kpid.config_path, good)
        mark = kpid.log_size()
        kpid.signal(signal.SIGHUP)
        kpitest.tally_fault("SIGHUP reload under load (broken file)" if bad else "SIGHUP reload under load")
        if consumed_at_first is None:
            consumed_at_first = faultlib.consumed_now(c)
        # One signal at a time: signals sent during a reload would merge into one.
        kpid.wait_log(r"reload of .* rejected" if bad else r"reloaded .*kpid-reload\.json",
                      start=mark, timeout=30)
        assert kpid.running(), kpid.log_tail()
    stream.wait_consumed(c, group, kpid, timeout=120)
    log = kpid.log()
    assert len(re.findall(r"reloaded .*kpid-reload\.json", log)) == 7, kpid.log_tail(80)
    assert len(re.findall(r"reload of .*kpid-reload\.json rejected", log)) == 3
    assert "bogus_key: unknown key" in log
    # The reloads began while the stream was being consumed, not after it.
    assert consumed_at_first < n, "stream consumed before the first reload: make it longer"
    assert kpid.stop() == 0
    stream.check_run(c, group, dlq, "reloaded under load")


def test_repeated_warnings_are_held_back(env):
    """A Redis that is gone makes the same warning at every backoff step: after five such
    lines the rest are held back (summed up in one "(repeated N times in 60 s)" line when
    the minute is over: tests/unit/test_ratelimit.c checks that part)."""
    redis = env.redis()
    broker = env.broker()
    cfg = env.config(broker, redis)
    cfg["redis"]["timeout_ms"] = 200
    kpid = env.kpid(cfg)
    kpid.wait_log(r"assigned kpi\.events", timeout=30)
    redis.kill()
    ev = (b'{"event_id":"rep1","type":"email","manager_id":"ivanov",'
          b'"ts":"2026-11-20T10:00:00Z","direction":"outbound"}')
    kpitest.produce(broker.bootstrap, kpitest.EVENTS_TOPIC, [("ivanov", ev)])
    # Backoff 0.5, 1, 2, 4, 8 s ... : five lines pass within the first 16 s, the sixth and
    # later are held until the minute is over.
    time.sleep(20)
    log = kpid.log()
    retry = [l for l in log.splitlines() if "flush failed, consumption paused" in l]
    assert 1 <= len(retry) <= 5, "\n".join(retry)
    assert kpid.running()
    kpid.stop()
