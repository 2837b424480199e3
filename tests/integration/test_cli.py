"""kpid's operator interface (contract section 6): --version, --check-config with JSON
paths, exit codes, and a Redis that is not there yet."""

import os
import re
import signal
import subprocess
import time

import expect
import kpitest
from kpitest import DLQ_TOPIC, EVENTS_TOPIC


def yesterday(hour):
    """(RFC 3339 string, epoch ms) of yesterday hh:00 UTC: recent, so its day keys are
    alive under the default retention whenever the test runs."""
    t = (int(time.time()) // 86400 - 1) * 86400 + hour * 3600
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t)), t * 1000


def run_kpid(*args, timeout=20):
    r = subprocess.run([kpitest.binary("kpid")] + list(args), stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=timeout)
    return r.returncode, r.stdout.decode("utf-8", "replace"), r.stderr.decode("utf-8", "replace")


def good_config(redis_port=6379):
    return kpitest.default_config(
        "127.0.0.1:9092", redis_port,
        time_zone="Europe/Moscow",
        teams={"msk": {"time_zone": "Europe/Moscow", "lead": "sidorov"}, "plain": {}},
        managers={"ivanov": {"team": "msk", "role": "hunter"}, "sidorov": {"team": "msk"}},
        internal={"domains": ["ourcompany.ru"], "phone_prefixes": ["+7495100"]},
        stages=[{"name": "lead", "p": 0.05}, {"name": "mql", "p": 0.1}, {"name": "sql", "p": 0.2},
                {"name": "proposal", "p": 0.4}, {"name": "negotiation", "p": 0.6},
                {"name": "won", "p": 1, "terminal": True}, {"name": "lost", "p": 0, "terminal": True}])


def project_version():
    with open(os.path.join(kpitest.SRC, "CMakeLists.txt")) as f:
        m = re.search(r"project\(\s*kpid\s+VERSION\s+([0-9.]+)", f.read())
    return m.group(1) if m else None


def test_version():
    rc, out, err = run_kpid("--version")
    assert rc == 0, (out, err)
    assert re.fullmatch(r"kpid \S+\n?", out), repr(out)
    want = project_version()
    if want:
        assert out.split()[1] == want, "kpid --version says %r, CMakeLists.txt %s" % (out, want)


def test_check_config_good_file(tmp_path):
    path = kpitest.write_config(str(tmp_path / "good.json"), good_config())
    rc, out, err = run_kpid("-c", path, "--check-config")
    assert rc == 0, out + err
    rc, out, err = run_kpid("-c", path, "-n")
    assert rc == 0, out + err
    # The file format allows comments.
    commented = tmp_path / "commented.json"
    text = open(path).read()
    commented.write_text("// kpid test configuration\n/* block\n comment */\n" +
                         text.replace('"log_level": "info",', '"log_level": "info", // trailing comment'))
    rc, out, err = run_kpid("-c", str(commented), "--check-config")
    assert rc == 0, out + err


def error_lines(out, err):
    return [l for l in (out + err).splitlines() if l.startswith("$")]


def test_check_config_reports_every_error_with_its_path(tmp_path):
    cfg = good_config()
    cfg["kafka"]["topics"] = ["kpi.events", ""]
    cfg["redis"]["port"] = "6379"
    cfg["teams"]["t1"] = {"time_zone": "Mars/Olympus_Mons"}
    cfg["teams"]["unassigned"] = {}
    cfg["managers"]["m1"] = {"team": "nope"}
    cfg["touch_min_call_s"] = -1
    cfg["batch"]["max_ms"] = "fast"
    cfg["bogus"] = True
    path = kpitest.write_config(str(tmp_path / "bad.json"), cfg)
    rc, out, err = run_kpid("-c", path, "--check-config")
    assert rc == 2, (rc, out, err)
    lines = error_lines(out, err)
    for p in ("$.kafka.topics[1]", "$.redis.port", "$.teams.t1.time_zone", "$.teams.unassigned",
              "$.managers.m1.team", "$.touch_min_call_s", "$.batch.max_ms", "$.bogus"):
        hits = [l for l in lines if re.match(re.escape(p) + r"(:| )", l)]
        assert hits, "no error line for %s in:\n%s" % (p, out + err)
        assert all(l.split(":", 1)[1].strip() for l in hits if ":" in l), hits
    assert not any(l.startswith("$.kafka.topics[0]") for l in lines), lines


def test_unknown_nested_key_and_bad_json(tmp_path):
    cfg = good_config()
    cfg["redis"]["hostname"] = "x"
    path = kpitest.write_config(str(tmp_path / "unknown.json"), cfg)
    rc, out, err = run_kpid("-c", path, "--check-config")
    assert rc == 2, (rc, out, err)
    assert any(l.startswith("$.redis.hostname") for l in error_lines(out, err)), out + err
    broken = tmp_path / "broken.json"
    broken.write_text('{"kafka": {"brokers": "x",\n')
    rc, out, err = run_kpid("-c", str(broken), "--check-config")
    assert rc == 2, (rc, out, err)
    assert (out + err).strip(), "no message for a file that is not JSON"
    rc, out, err = run_kpid("-c", str(tmp_path / "missing.json"), "--check-config")
    assert rc == 2, (rc, out, err)
    assert "missing.json" in out + err, out + err


def test_bad_usage_exits_2(tmp_path):
    path = kpitest.write_config(str(tmp_path / "good.json"), good_config())
    for args in (["--bogus"], ["-c"], ["-c", path, "--no-such-flag"], ["-c", path, "extra-arg"]):
        rc, out, err = run_kpid(*args)
        assert rc == 2, (args, rc, out, err)
        assert (out + err).strip(), "no message for %r" % args


def test_unreachable_redis_retries_then_works(env):
    broker = env.broker()
    redis = env.redis(start=False)          # port chosen, nothing listening yet
    assert not kpitest.port_is_open(redis.port)
    cfg = env.config(broker, redis)
    kpid = env.kpid(cfg)
    ts, ts_ms = yesterday(10)
    day = expect.period_ids(ts_ms, "UTC")[0]
    msgs = kpitest.produce(broker.bootstrap, EVENTS_TOPIC, [
        ("ivanov", b'{"event_id":"r1","type":"email","manager_id":"ivanov","ts":"%s",'
                   b'"direction":"outbound"}' % ts.encode()),
        ("ivanov", b"not json")])

    def complained():
        log = kpid.log()
        return any(("redis" in l.lower() and str(redis.port) in l) for l in log.splitlines())
    kpitest.wait_for(complained, 15, "a log line naming Redis and 127.0.0.1:%d" % redis.port,
                     on_timeout=kpid.log_tail)
    time.sleep(2)
    assert kpid.running(), "kpid gave up while Redis was down:\n" + kpid.log_tail()

    redis.start()
    c = redis.client()
    kpitest.wait_consumed(c, len(msgs), kpid, timeout=60)
    kpitest.assert_low_watermarks_zero(broker, [EVENTS_TOPIC, DLQ_TOPIC])
    assert c.hget("kpi:mgr:{ivanov}:%s" % day, "emails") == b"1"
    assert c.hget("kpi:meta", "events_invalid") == b"1"
    assert kpid.stop() == 0, kpid.log_tail()


def test_sigint_is_a_clean_stop(env):
    redis = env.redis()
    broker = env.broker()
    kpid = env.kpid(env.config(broker, redis))
    time.sleep(1.0)
    assert kpid.running(), kpid.log_tail()
    kpid.signal(signal.SIGINT)
    assert kpid.wait(30) == 0, kpid.log_tail()


def test_sighup_reloads_teams_and_rejects_a_bad_file(env):
    redis = env.redis()
    broker = env.broker()
    cfg = env.config(broker, redis, teams={"a": {}, "b": {"time_zone": "Asia/Kolkata"}},
                     managers={"ivanov": {"team": "a"}})
    kpid = env.kpid(cfg)
    c = redis.client()
    ts, ts_ms = yesterday(20)
    day_a = expect.period_ids(ts_ms, "UTC")[0]
    day_b = expect.period_ids(ts_ms, "Asia/Kolkata")[0]      # 01:30 the next day
    assert day_a != day_b

    def email(eid):
        return ("ivanov", b'{"event_id":"%s","type":"email","manager_id":"ivanov",'
                          b'"ts":"%s","direction":"outbound"}' % (eid.encode(), ts.encode()))
    n = len(kpitest.produce(broker.bootstrap, EVENTS_TOPIC, [email("h1")]))
    kpitest.wait_consumed(c, n, kpid)
    assert c.hget("kpi:team:{a}:" + day_a, "emails") == b"1"

    # A good new file: ivanov moves to team b (Kolkata), so his periods move too.
    cfg["managers"]["ivanov"]["team"] = "b"
    kpitest.write_config(kpid.config_path, cfg)
    mark = kpid.log_size()
    kpid.signal(signal.SIGHUP)
    kpid.wait_log(r"(?i)reload", start=mark, timeout=15)
    n += len(kpitest.produce(broker.bootstrap, EVENTS_TOPIC, [email("h2")]))
    kpitest.wait_consumed(c, n, kpid)
    assert c.hget("kpi:team:{b}:" + day_b, "emails") == b"1", kpid.log_tail()
    assert c.hget("kpi:mgr:{ivanov}:" + day_b, "emails") == b"1"
    assert c.hget("kpi:team:{a}:" + day_a, "emails") == b"1"            # state kept

    # A bad new file is rejected with a log line; the running configuration stays.
    bad = dict(cfg, managers={"ivanov": {"team": "nope"}}, bogus=1)
    kpitest.write_config(kpid.config_path, bad)
    mark = kpid.log_size()
    kpid.signal(signal.SIGHUP)
    kpid.wait_log(r"(?i)reload", start=mark, timeout=15)
    time.sleep(0.5)
    assert kpid.running(), kpid.log_tail()
    n += len(kpitest.produce(broker.bootstrap, EVENTS_TOPIC, [email("h3")]))
    kpitest.wait_consumed(c, n, kpid)
    assert c.hget("kpi:team:{b}:" + day_b, "emails") == b"2", kpid.log_tail()
    assert c.hget("kpi:team:{a}:" + day_a, "emails") == b"1"
    kpitest.assert_low_watermarks_zero(broker, [EVENTS_TOPIC, DLQ_TOPIC])
    assert kpid.stop() == 0, kpid.log_tail()
