"""kpitest: the integration-test harness for kpid.

Starts the real processes a test needs (redis-server, kpi-devbroker, kpid) on free
loopback ports, talks to them, and guarantees they are all gone when the test ends,
whether it passed, failed or raised.

Typical use (see conftest.py for the `env` fixture that wraps Env):

    def test_something(env):
        redis = env.redis()                                  # fresh redis-server
        broker = env.broker({"kpi.events": 4, "kpi.events.dlq": 1, "kpi.alerts": 1})
        cfg = env.config(broker, redis)                      # dict of kpid's config
        kpid = env.kpid(cfg)                                 # writes the file, starts kpid
        msgs = produce(broker.bootstrap, "kpi.events", [(b"ivanov", b'{...}')])
        wait_consumed(redis.client(), len(msgs), kpid)
        assert_low_watermarks_zero(broker, ["kpi.events", "kpi.events.dlq"])
        counters = counter_view(dump_redis(redis.client()))

Environment: KPI_BUILD (cmake build dir holding kpid, kpi-devbroker, kpi-gen) and
KPI_SRC (repository root). Binaries missing from KPI_BUILD fail the test (not skip):
CTest must not report green for tests that did not run.

Least privilege: every redis-server loads config/redis-acl.conf (acl_text(): test
passwords for its placeholders, `default` left on with every permission for the tests' own
clients), and default_config() connects kpid as the `kpid` ACL user (password_file), so a
command or key the file does not grant kpid fails the test that needs it (NOPERM). kpictl
runs as the read-only `dashboard` user (dashboard_config()). Env.kpid refuses a config
dict with another redis.user unless any_user=True; env.redis(acl=False) is a server
without the ACL users (Env.config then connects as `default`).

Every child is started with PR_SET_PDEATHSIG=SIGKILL, so even a pytest that is itself
killed -9 leaves no redis/broker/kpid behind to confuse the next run.

Why the low-watermark check exists: the librdkafka mock cluster behind kpi-devbroker
silently drops the oldest data of a partition beyond 5 MiB / 100k batches. A test that
counts events must call assert_low_watermarks_zero() on every topic it used, or it
could compare against messages kpid never had a chance to read.

What is here:
  processes  Env: redis(appendonly=), broker(topics, brokers=), config(broker, redis,
             **over), write_config(), kpid(cfg), clean_run(messages, **over), logs(),
             sanitizer_reports(), close().
             RedisServer: client(), stop() (clean), kill(), start(), restart() (same port
             and dir; with appendonly=True the data survives), running(),
             connection_users().
             DevBroker: bootstrap, cmd("down 1"), watermarks(topic), create_topic(),
             data_lost(). Kpid: start(), stop() -> exit status, kill(), signal(),
             wait(), running(), log(), log_tail(), wait_log(regex), log_size().
  Kafka      produce() -> [Msg] with partitions/offsets, read_topic() -> [Record],
             watermarks(), end_offsets(), partitions_of(), wait_topic_count(),
             assert_low_watermarks_zero(), run_gen()/read_gen_file() for kpi-gen.
  Redis      meta(), consumed_count(), wait_consumed(), dump_redis() (normalized, the
             volatile parts left out), diff_dumps(), assert_same(), counter_view(),
             expiry_view().
  config     default_config() (test defaults: UTC, batch.max_ms 50, fast group session,
             the kpid ACL user), deep_merge() with DELETE to drop a key, write_config().
  ACL        acl_text(), as_user(cfg, user), dashboard_config(cfg), password_file(user),
             user_client(redis, user), ACL_PASSWORDS; KPI_ACL_FILE overrides the file.
  misc       free_port(), port_is_open(), wait_for(), binary(), HarnessError.
  tally      tally_fault(kind), tally_compared(messages, malformed): what the process did
             to kpid, written to $KPI_BUILD/reliability/ at exit (tools/reliability.py);
             Kpid.kill, RedisServer.kill and DevBroker fault commands count themselves.

"Equals one clean run" (crash tests): produce with explicit partitions, so a second
broker gets the same partitions and offsets, then
    ref, _ = env.clean_run([(k, v, p) for k, v, p in sent], **config_over)
    assert_same(ref, dump_redis(redis.client()), "state after crashes")
"""

import atexit
import ctypes
import hashlib
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import namedtuple

import redis as redis_mod
from redis.backoff import NoBackoff
from redis.retry import Retry
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

BUILD = os.environ.get("KPI_BUILD", "")
SRC = os.environ.get("KPI_SRC", "")

DEFAULT_PREFIX = "kpi"
EVENTS_TOPIC = "kpi.events"
DLQ_TOPIC = "kpi.events.dlq"
ALERTS_TOPIC = "kpi.alerts"
GROUP = "kpid-test"

# A message as it sits in Kafka. key/value are bytes (key may be None).
Msg = namedtuple("Msg", "topic partition offset key value")
# A consumed record; headers is a dict str -> bytes (last value wins for repeats) and
# header_list keeps the raw list of (name, bytes) pairs.
Record = namedtuple("Record", "topic partition offset key value headers header_list")


class HarnessError(AssertionError):
    """A failure of the environment (a process did not start, a wait timed out)."""


# ---------------------------------------------------------------------------------
# least privilege: every redis-server of the harness loads config/redis-acl.conf


# KPI_ACL_FILE runs the suite against another ACL file (yours, or a copy with a command
# taken out to see the tests fail).
ACL_FILE = os.environ.get("KPI_ACL_FILE") or os.path.join(
    SRC or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."),
    "config", "redis-acl.conf")
KPID_USER = "kpid"
DASHBOARD_USER = "dashboard"
# One password per user, so a client that names the wrong user cannot get in by accident.
ACL_PASSWORDS = {"admin": "admin-test-pw", KPID_USER: "kpid-test-pw",
                 DASHBOARD_USER: "dashboard-test-pw"}

HARNESS_CLIENT_NAME = "kpitest"

_secrets_dir = None


def acl_text(path=ACL_FILE, passwords=None):
    """The shipped ACL file as every harness redis-server loads it: each user's
    #<USER>_PASSWORD_SHA256 placeholder replaced by the hash of its test password, and
    `default` (which the file turns off) on with every permission and no password, for the
    tests' own checking clients. kpid, kpictl and --rebuild authenticate as the file's
    users, so what the file does not grant them fails the tests (NOPERM)."""
    passwords = ACL_PASSWORDS if passwords is None else passwords
    with open(path) as f:
        text = f.read()
    out = []
    for line in text.splitlines():
        if line.startswith("user default "):
            line = "user default on nopass ~* &* +@all"
        for user, pw in passwords.items():
            line = line.replace("#%s_PASSWORD_SHA256" % user.upper(),
                                "#" + hashlib.sha256(pw.encode()).hexdigest())
        if "_PASSWORD_SHA256" in line:
            raise HarnessError("%s: a password placeholder without a test password: %s" % (path, line))
        out.append(line)
    return "\n".join(out) + "\n"


def password_file(user):
    """An absolute redis.password_file (mode 0600) holding `user`'s test password; one
    per test process, removed at exit."""
    global _secrets_dir
    if _secrets_dir is None:
        _secrets_dir = tempfile.mkdtemp(prefix="kpitest-secrets-")
        atexit.register(shutil.rmtree, _secrets_dir, True)
    path = os.path.join(_secrets_dir, "%s-password" % user)
    if not os.path.exists(path):
        fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(fd, (ACL_PASSWORDS[user] + "\n").encode())
        os.close(fd)
        os.replace(path + ".tmp", path)
    return path


def as_user(cfg, user):
    """cfg connecting to Redis as an ACL user of the harness (password from a file);
    user None: as `default` without a password (for a server started with acl=False)."""
    if user is None:
        return deep_merge(cfg, {"redis": {"user": None, "password": None, "password_file": DELETE}})
    return deep_merge(cfg, {"redis": {"user": user, "password": None,
                                      "password_file": password_file(user)}})


def dashboard_config(cfg):
    """cfg for kpictl: the read-only `dashboard` user (kpictl sends no write command)."""
    return as_user(cfg, DASHBOARD_USER)


def user_client(redis, user, **kw):
    """A redis-py client of a harness RedisServer authenticated as an ACL user (closed
    at teardown)."""
    c = redis_mod.Redis(host=redis.host, port=redis.port, username=user,
                        password=ACL_PASSWORDS[user], socket_timeout=kw.pop("socket_timeout", 5), **kw)
    redis._clients.append(c)
    return c


# ---------------------------------------------------------------------------------
# reliability tally: what this test process did to kpid, for tools/reliability.py


_tally = {"faults": {}, "runs_compared": 0, "messages_compared": 0, "malformed_compared": 0}


def tally_fault(kind, n=1):
    """Count a fault injected while kpid runs ("kill -9 kpid", "broker down", ...). The
    process-control methods below count theirs; tests count the others (OOM, failovers)."""
    _tally["faults"][kind] = _tally["faults"].get(kind, 0) + n


def tally_compared(messages, malformed):
    """Count a run whose final Redis was found equal to a clean run's (call it only after
    the comparison passed)."""
    _tally["runs_compared"] += 1
    _tally["messages_compared"] += messages
    _tally["malformed_compared"] += malformed


def _tally_write():
    if not BUILD or not (_tally["faults"] or _tally["runs_compared"]):
        return
    test = next((os.path.basename(a) for a in sys.argv if os.path.basename(a).startswith("test_")
                 and a.endswith(".py")), "pytest")
    d = os.path.join(BUILD, "reliability")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "%s-%d.json" % (test[:-3] if test.endswith(".py") else test,
                                              os.getpid())), "w") as f:
        json.dump(dict(_tally, test=test), f)


atexit.register(_tally_write)


# ---------------------------------------------------------------------------------
# processes


def binary(name):
    """Absolute path of a built binary ($KPI_BUILD/<name>); fails the test if absent."""
    if not BUILD:
        raise HarnessError("KPI_BUILD is not set (the cmake build directory)")
    path = os.path.join(BUILD, name)
    if not os.access(path, os.X_OK):
        raise HarnessError("%s is not built (looked for %s)" % (name, path))
    return path


def have_binary(name):
    return bool(BUILD) and os.access(os.path.join(BUILD, name), os.X_OK)


def free_port():
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_open(port, host="127.0.0.1"):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


_libc = None


def _die_with_parent():
    # Runs in the child between fork and exec: ask the kernel to SIGKILL it when the
    # (pytest) parent dies, so nothing outlives a killed test run.
    global _libc
    try:
        if _libc is None:
            _libc = ctypes.CDLL("libc.so.6", use_errno=True)
        _libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - best effort; teardown still kills children
        pass


def spawn(argv, log_path, stdin=subprocess.DEVNULL, stdout=None, env=None):
    """Popen with stderr (and stdout unless given) appended to log_path."""
    log = open(log_path, "ab")
    try:
        proc = subprocess.Popen(
            argv,
            stdin=stdin,
            stdout=log if stdout is None else stdout,
            stderr=log,
            env=env,
            preexec_fn=_die_with_parent,
            close_fds=True,
        )
    finally:
        log.close()
    return proc


def stop_process(proc, timeout=10.0, sig=signal.SIGTERM):
    """Signal proc and wait for it; SIGKILL after timeout. Returns the exit status."""
    if proc.poll() is not None:
        return proc.returncode
    try:
        proc.send_signal(sig)
    except ProcessLookupError:
        pass
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(10)


def kill_process(proc):
    """SIGKILL and reap."""
    if proc.poll() is None:
        try:
            proc.kill()
        except ProcessLookupError:
            pass
    return proc.wait(10)


def tail(path, lines=40):
    """The last lines of a text file (for failure messages)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        return "<%s unreadable: %s>" % (path, e)
    text = data.decode("utf-8", "replace").splitlines()
    return "\n".join(text[-lines:])


def wait_for(predicate, timeout, what, interval=0.05, on_timeout=None):
    """Poll predicate() until truthy; return its value. Raises HarnessError naming `what`
    (plus on_timeout() text, e.g. a log tail) when timeout seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            extra = on_timeout() if on_timeout else ""
            raise HarnessError("timed out after %.1fs waiting for %s\n%s" % (timeout, what, extra))
        time.sleep(interval)


class RedisServer:
    """A private redis-server on a free loopback port with its own directory.

    Persistence is off (--save '') unless appendonly=True, in which case restart()
    brings the data back from the AOF (useful for Redis-restart fault tests).
    acl=True (the default) loads acl_text() (config/redis-acl.conf): kpid must connect
    as the `kpid` user; acl=False is a server without ACL users."""

    def __init__(self, workdir, appendonly=False, port=None, extra_args=(), acl=True):
        self.dir = workdir
        os.makedirs(self.dir, exist_ok=True)
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.appendonly = appendonly
        self.extra_args = list(extra_args)
        self.acl = acl
        self.log_path = os.path.join(self.dir, "redis.log")
        self.proc = None
        self._clients = []

    def start(self, timeout=10.0):
        argv = [
            shutil.which("redis-server") or "/usr/bin/redis-server",
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "always",
            "--dir", self.dir,
            "--daemonize", "no",
            "--protected-mode", "no",
            "--logfile", "",
        ]
        if self.acl:
            acl_path = os.path.join(self.dir, "users.acl")
            with open(acl_path, "w") as f:
                f.write(acl_text())
            argv += ["--aclfile", acl_path]
        argv += self.extra_args
        self.proc = spawn(argv, self.log_path)

        def ready():
            if self.proc.poll() is not None:
                raise HarnessError("redis-server exited (%s):\n%s"
                                   % (self.proc.returncode, tail(self.log_path)))
            try:
                c = redis_mod.Redis(host=self.host, port=self.port, socket_timeout=1)
                ok = c.ping()
                c.close()
                return ok
            except redis_mod.exceptions.RedisError:
                return False

        wait_for(ready, timeout, "redis-server on port %d" % self.port,
                 on_timeout=lambda: tail(self.log_path))
        return self

    def client(self, db=0):
        """A redis-py client (bytes responses), closed at teardown. It reconnects by
        itself after a restart (one retry), so tests may keep it across restarts. It is
        the `default` user, named HARNESS_CLIENT_NAME (see connection_users())."""
        c = redis_mod.Redis(host=self.host, port=self.port, db=db, socket_timeout=10,
                            client_name=HARNESS_CLIENT_NAME, retry=Retry(NoBackoff(), 1),
                            retry_on_error=[redis_mod.exceptions.ConnectionError])
        self._clients.append(c)
        return c

    def connection_users(self):
        """{ACL user: connections} of the clients that are not the harness's own: proof
        that kpid (or kpictl) authenticated as the user it should and not as `default`."""
        out = {}
        for info in self.client().client_list():
            if info.get("name") != HARNESS_CLIENT_NAME:
                out[info["user"]] = out.get(info["user"], 0) + 1
        return out

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        """Clean shutdown (SIGTERM: with AOF on, everything acknowledged is kept)."""
        if self.proc is not None:
            stop_process(self.proc)

    def kill(self):
        if self.proc is not None:
            tally_fault("kill -9 redis-server")
            kill_process(self.proc)

    def restart(self, timeout=10.0):
        """Stop and start again on the same port and directory."""
        self.stop()
        return self.start(timeout)

    def close(self):
        for c in self._clients:
            try:
                c.close()
            except Exception:  # noqa: BLE001
                pass
        self._clients = []
        if self.proc is not None:
            kill_process(self.proc)


class DevBroker:
    """kpi-devbroker: a librdkafka mock cluster on loopback, driven through stdin.

    topics: dict name -> partitions. bootstrap is parsed from its first stdout line.
    cmd("down 1") sends one control line and returns its answer line ("ok ...");
    an "error ..." answer raises unless check=False. Commands (see tools/devbroker.c):
    down/up <broker>, leader <topic> <p> <broker>, coordinator <group> <broker>,
    rtt <broker> <ms>,
    error <ApiKey> <count> <errcode>, create <topic> <parts>, watermarks <topic>.
    strict=True makes the broker exit 3 as soon as it drops data (see data_lost())."""

    def __init__(self, workdir, topics, brokers=None, extra_args=(), strict=False):
        self.dir = workdir
        os.makedirs(self.dir, exist_ok=True)
        self.topics = dict(topics)
        self.brokers = brokers
        self.extra_args = list(extra_args)
        self.strict = strict
        self.log_path = os.path.join(self.dir, "devbroker.log")
        self.proc = None
        self.bootstrap = None
        self.last_lines = []

    def start(self, timeout=15.0):
        argv = [binary("kpi-devbroker")]
        for name, parts in self.topics.items():
            argv += ["-t", "%s:%d" % (name, parts)]
        if self.brokers:
            argv += ["-b", str(self.brokers)]
        if self.strict:
            argv.append("--strict")
        argv += self.extra_args
        self.proc = spawn(argv, self.log_path, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        line = self._readline(timeout)
        if not line.startswith("bootstrap="):
            raise HarnessError("kpi-devbroker: unexpected first line %r\n%s" % (line, tail(self.log_path)))
        self.bootstrap = line[len("bootstrap="):].strip()
        return self

    def _readline(self, timeout):
        # Line-at-a-time from the pipe with a deadline (readline() alone could hang).
        buf = b""
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while not buf.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0:
                raise HarnessError("kpi-devbroker: no answer within %.1fs (got %r)\n%s"
                                   % (timeout, buf, tail(self.log_path)))
            r, _, _ = select.select([fd], [], [], left)
            if not r:
                continue
            chunk = os.read(fd, 1)
            if not chunk:
                raise HarnessError("kpi-devbroker exited (%s)\n%s" % (self.proc.poll(), tail(self.log_path)))
            buf += chunk
        return buf.decode("utf-8", "replace").rstrip("\n")

    def cmd(self, line, check=True, timeout=15.0):
        """Send one control line; return its final answer line ("ok ..." or "error ...").
        Lines before it (watermarks' "watermark ..." lines) are left in self.last_lines."""
        words = line.split()
        if words and words[0] in ("down", "leader", "error", "rtt"):
            tally_fault({"down": "broker down", "leader": "partition leader moved",
                         "rtt": "broker slowed (rtt)"}.get(words[0], "broker request errors injected"),
                        int(words[2]) if words[0] == "error" and len(words) > 2 and words[2].isdigit() else 1)
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()
        self.last_lines = []
        while True:
            answer = self._readline(timeout)
            if answer.startswith("ok") or answer.startswith("error"):
                break
            self.last_lines.append(answer)
        if check and not answer.startswith("ok"):
            raise HarnessError("kpi-devbroker: %r -> %r" % (line, answer))
        return answer

    def watermarks(self, topic):
        """{partition: (low, high)} as the broker itself sees them (works while a test's
        clients cannot reach it, e.g. with brokers down)."""
        self.cmd("watermarks %s" % topic)
        out = {}
        for l in self.last_lines:
            f = l.split()
            if len(f) == 5 and f[0] == "watermark" and f[1] == topic:
                out[int(f[2])] = (int(f[3]), int(f[4]))
        return out

    def data_lost(self):
        """The broker's own "DATA LOST" reports (its monitor polls low watermarks)."""
        try:
            with open(self.log_path, "rb") as f:
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return []
        return [l for l in text.splitlines() if "DATA LOST" in l]

    def create_topic(self, name, partitions):
        self.cmd("create %s %d" % (name, partitions))
        self.topics[name] = partitions

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc is not None:
            stop_process(self.proc)

    def close(self):
        if self.proc is not None:
            try:
                if self.proc.stdin:
                    self.proc.stdin.close()
            except OSError:
                pass
            stop_process(self.proc, timeout=5)
            if self.proc.stdout:
                self.proc.stdout.close()


SANITIZER_RE = re.compile(r"ERROR: (Address|Leak)Sanitizer|runtime error:|UndefinedBehaviorSanitizer")


class Kpid:
    """One kpid process. Its stderr (and stdout) go to log_path; restarts append to the
    same log so a failure shows the whole story."""

    def __init__(self, workdir, config_path, name="kpid", extra_args=(), wrapper=()):
        self.dir = workdir
        self.config_path = config_path
        self.name = name
        self.wrapper = list(wrapper)  # e.g. ["valgrind", "--error-exitcode=99"]
        self.log_path = os.path.join(workdir, "%s.log" % name)
        self.extra_args = list(extra_args)
        self.proc = None
        self.starts = 0

    def start(self):
        self.starts += 1
        with open(self.log_path, "ab") as f:
            f.write(b"===== kpitest: start #%d =====\n" % self.starts)
        self.proc = spawn(self.wrapper + [binary("kpid"), "-c", self.config_path] + self.extra_args,
                          self.log_path)
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def stop(self, timeout=30.0):
        """SIGTERM (flush, store offsets, exit 0) and wait. Returns the exit status."""
        return stop_process(self.proc, timeout=timeout)

    def signal(self, sig):
        self.proc.send_signal(sig)

    def kill(self):
        """SIGKILL (a crash) and reap. Returns the exit status (-9)."""
        tally_fault("kill -9 kpid")
        return kill_process(self.proc)

    def wait(self, timeout):
        return self.proc.wait(timeout)

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def wait_log(self, pattern, timeout=30.0, start=0):
        """Wait until a line of the log (from character `start` on) matches the regex;
        returns the match. Fails early if kpid exits."""
        rx = re.compile(pattern)

        def found():
            m = rx.search(self.log(), start)
            if m is None and not self.running():
                raise HarnessError("kpid exited (%s) before logging /%s/\n%s"
                                   % (self.proc.returncode, pattern, self.log_tail()))
            return m
        return wait_for(found, timeout, "kpid log line /%s/" % pattern, on_timeout=self.log_tail)

    def sanitizer_reports(self):
        """ASan/LSan/UBSan report lines in the log (a sanitized build reports there)."""
        return [l for l in self.log().splitlines() if SANITIZER_RE.search(l)]

    def log_size(self):
        """Current length of the log text (a `start` for wait_log after an action)."""
        return len(self.log())

    def log_tail(self, lines=40):
        return "----- %s log tail (%s) -----\n%s" % (self.name, self.log_path, tail(self.log_path, lines))

    def close(self):
        if self.proc is not None:
            kill_process(self.proc)


# ---------------------------------------------------------------------------------
# configuration


FAST_GROUP_PROPERTIES = {"session.timeout.ms": "6000", "heartbeat.interval.ms": "500"}


def default_config(bootstrap, redis_port, **over):
    """kpid's config with test defaults (short batches, UTC); `over` is deep-merged:
    default_config(b, p, time_zone="Europe/Moscow", batch={"max_ms": 20})."""
    cfg = {
        "kafka": {
            "brokers": bootstrap,
            "topics": [EVENTS_TOPIC],
            "group": GROUP,
            "dlq_topic": DLQ_TOPIC,
            "alerts_topic": ALERTS_TOPIC,
            # The mock cluster only hands a restarted member its partitions once the old
            # member's session has timed out, even after a clean LeaveGroup: with the
            # 45 s default every restart would cost 45 s.
            "properties": dict(FAST_GROUP_PROPERTIES),
        },
        # As the least-privileged ACL user every harness redis-server has (acl_text()).
        "redis": {"host": "127.0.0.1", "port": redis_port, "db": 0, "user": KPID_USER,
                  "password": None, "password_file": password_file(KPID_USER),
                  "prefix": DEFAULT_PREFIX, "timeout_ms": 2000},
        "time_zone": "UTC",
        "teams": {},
        "managers": {},
        "internal": {"domains": [], "phone_prefixes": []},
        "touch_min_call_s": 10,
        "dedup_window_s": 604800,
        "future_skew_s": 86400,
        "batch": {"max_events": 5000, "max_ms": 50},
        "max_message_bytes": 1048576,
        "retention": {"day_s": 10368000, "week_s": 63072000},
        "log_level": "info",
    }
    return deep_merge(cfg, over)


def deep_merge(base, over):
    """A new dict: base with over merged in (dicts merged recursively, others replaced;
    a value of DELETE removes the key)."""
    out = dict(base)
    for k, v in over.items():
        if v is DELETE:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


DELETE = object()


def write_config(path, cfg):
    """Write a config dict as JSON; returns path. Atomically (rename), so a kpid reloading
    on SIGHUP never reads half a file."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)
    return path


# ---------------------------------------------------------------------------------
# Kafka


def producer_conf(bootstrap, **extra):
    conf = {
        "bootstrap.servers": bootstrap,
        "compression.codec": "zstd",
        "linger.ms": 25,
        "batch.num.messages": 10000,
        "enable.idempotence": True,  # keeps per-partition order through retries
        "message.timeout.ms": 60000,
    }
    conf.update(extra)
    return conf


def produce(bootstrap, topic, messages, partition=None, timeout=60.0, **conf):
    """Produce messages and wait for every delivery.

    messages: iterable of (key, value) or (key, value, partition); key None = no key,
    str keys/values are UTF-8 encoded. partition: None (the default partitioner: by key,
    random when keyless), an int, or a function index -> int.
    Returns a list of Msg (topic, partition, offset, key, value) in produce order; raises
    if any delivery failed."""
    p = Producer(producer_conf(bootstrap, **conf))
    results = []
    errors = []

    def make_cb(i):
        def cb(err, m):
            if err is not None:
                errors.append((i, err))
            else:
                results[i] = Msg(m.topic(), m.partition(), m.offset(), m.key(), m.value())
        return cb

    for i, item in enumerate(messages):
        key, value = item[0], item[1]
        part = item[2] if len(item) > 2 else (partition(i) if callable(partition) else partition)
        if isinstance(key, str):
            key = key.encode()
        if isinstance(value, str):
            value = value.encode()
        results.append(None)
        kw = {"key": key, "value": value, "on_delivery": make_cb(i)}
        if part is not None:
            kw["partition"] = part
        while True:
            try:
                p.produce(topic, **kw)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    left = p.flush(timeout)
    if left:
        raise HarnessError("produce: %d messages not delivered within %.0fs" % (left, timeout))
    if errors:
        raise HarnessError("produce: %d delivery errors, first: %r" % (len(errors), errors[0]))
    assert all(r is not None for r in results)
    return results


def _consumer(bootstrap, **extra):
    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": "kpitest-" + uuid.uuid4().hex,
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "earliest",
    }
    conf.update(extra)
    return Consumer(conf)


def partitions_of(bootstrap, topic, timeout=10.0):
    """Sorted partition ids of a topic."""
    c = _consumer(bootstrap)
    try:
        md = c.list_topics(topic, timeout=timeout)
        t = md.topics.get(topic)
        if t is None or t.error is not None:
            raise HarnessError("topic %s: %s" % (topic, t.error if t else "missing"))
        return sorted(t.partitions)
    finally:
        c.close()


def watermarks(bootstrap, topic, timeout=10.0):
    """{partition: (low, high)} of a topic."""
    c = _consumer(bootstrap)
    try:
        md = c.list_topics(topic, timeout=timeout)
        t = md.topics.get(topic)
        if t is None or t.error is not None:
            raise HarnessError("topic %s: %s" % (topic, t.error if t else "missing"))
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)
                for p in sorted(t.partitions)}
    finally:
        c.close()


def end_offsets(bootstrap, topic):
    """{partition: high watermark} (the next offset to be written)."""
    return {p: hw for p, (lw, hw) in watermarks(bootstrap, topic).items()}


def assert_low_watermarks_zero(broker, topics):
    """Fails unless every partition of every topic still starts at offset 0.

    broker: a DevBroker (then its own "DATA LOST" reports are checked too) or a
    bootstrap string. The mock cluster drops a partition's oldest data past 5 MiB / 100k
    batches without telling clients; a test that counts events is only meaningful when
    nothing was dropped."""
    bootstrap = broker.bootstrap if isinstance(broker, DevBroker) else broker
    bad = []
    for t in topics:
        for p, (lw, hw) in watermarks(bootstrap, t).items():
            if lw != 0:
                bad.append("%s[%d]: low=%d high=%d" % (t, p, lw, hw))
    if isinstance(broker, DevBroker):
        bad += broker.data_lost()
    assert not bad, "mock broker truncated partitions (test produced too much data): " + ", ".join(bad)


def read_topic(bootstrap, topic, timeout=30.0):
    """Every record of a topic, all partitions from offset 0 to the current end.
    Returns Records sorted by (partition, offset)."""
    marks = watermarks(bootstrap, topic)
    todo = {p for p, (lw, hw) in marks.items() if hw > lw}
    out = []
    if not todo:
        return out
    c = _consumer(bootstrap)
    try:
        c.assign([TopicPartition(topic, p, marks[p][0]) for p in sorted(todo)])
        deadline = time.monotonic() + timeout
        while todo:
            if time.monotonic() > deadline:
                raise HarnessError("read_topic %s: partitions %s not read to the end" % (topic, sorted(todo)))
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    if m.offset() >= marks[m.partition()][1]:
                        todo.discard(m.partition())
                    continue
                raise HarnessError("read_topic %s: %s" % (topic, m.error()))
            hl = list(m.headers() or [])
            out.append(Record(m.topic(), m.partition(), m.offset(), m.key(), m.value(),
                              {k: v for k, v in hl}, hl))
            if m.offset() + 1 >= marks[m.partition()][1]:
                todo.discard(m.partition())
    finally:
        c.close()
    out.sort(key=lambda r: (r.partition, r.offset))
    return out


def wait_topic_count(bootstrap, topic, n, timeout=30.0, kpid=None):
    """Wait until a topic holds at least n records (by watermarks)."""
    def count():
        return sum(hw - lw for lw, hw in watermarks(bootstrap, topic).values()) >= n
    return wait_for(count, timeout, "%d records in %s" % (n, topic), interval=0.2,
                    on_timeout=(kpid.log_tail if kpid else None))


def read_gen_file(path):
    """kpi-gen output (`<key>\\t<payload>` per line) -> [(key bytes or None, payload bytes)].
    An empty key field means the message has no key."""
    out = []
    with open(path, "rb") as f:
        for line in f.read().split(b"\n"):
            if not line:
                continue
            key, sep, payload = line.partition(b"\t")
            if not sep:
                raise HarnessError("kpi-gen line without a tab: %r" % line[:80])
            out.append((key if key else None, payload))
    return out


def run_gen(workdir, config_path, seed, count, dup_frac=None, invalid_frac=None, start=None):
    """Run kpi-gen and return its messages as read_gen_file does."""
    out = os.path.join(workdir, "gen-%d-%d.txt" % (seed, count))
    argv = [binary("kpi-gen"), "-c", config_path, "--seed", str(seed), "--count", str(count), "--out", out]
    if dup_frac is not None:
        argv += ["--dup-frac", str(dup_frac)]
    if invalid_frac is not None:
        argv += ["--invalid-frac", str(invalid_frac)]
    if start is not None:
        argv += ["--start", start]
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
    if r.returncode != 0:
        raise HarnessError("kpi-gen failed (%d): %s" % (r.returncode, r.stderr.decode("utf-8", "replace")))
    return read_gen_file(out)


# ---------------------------------------------------------------------------------
# Redis


def meta(client, prefix=DEFAULT_PREFIX):
    """kpi:meta as {field: str}."""
    return {k.decode(): v.decode() for k, v in client.hgetall(prefix + ":meta").items()}


def consumed_count(m):
    """events_applied + events_invalid + events_duplicate of a meta dict."""
    return sum(int(m.get(f, 0)) for f in ("events_applied", "events_invalid", "events_duplicate"))


def wait_consumed(client, n, kpid=None, timeout=60.0, prefix=DEFAULT_PREFIX):
    """Wait until kpi:meta accounts for exactly n consumed messages. Fails at once when
    kpid exits or more than n are counted; on timeout shows meta and kpid's log tail.
    Returns the meta dict."""
    deadline = time.monotonic() + timeout
    last = {}
    while True:
        try:
            last = meta(client, prefix)
        except redis_mod.exceptions.ConnectionError:
            last = {"<redis>": "unreachable"}
        got = consumed_count(last) if "<redis>" not in last else -1
        if got == n:
            return last
        why = None
        if got > n:
            why = "kpi:meta counts %d consumed messages, more than the %d produced" % (got, n)
        elif kpid is not None and not kpid.running():
            why = "kpid exited with status %s before consuming %d messages" % (kpid.proc.returncode, n)
        elif time.monotonic() > deadline:
            why = "timed out after %.0fs waiting for %d consumed messages" % (timeout, n)
        if why:
            raise HarnessError("%s\nkpi:meta = %r\n%s" % (why, last, kpid.log_tail() if kpid else ""))
        time.sleep(0.05)


def _s(b):
    return b.decode("utf-8", "surrogateescape") if isinstance(b, bytes) else b


# Parts of kpid's Redis state that differ between two correct runs of the same input.
# Field names are relative to the prefix.
VOLATILE_META_FIELDS = ("last_flush_ms", "flush_seq", "eval_ts")  # flush_seq counts flushes: batching
VOLATILE_KEY_PATTERNS = (r"fence:.*",)       # partition -> owner token of this process
SCORES_VOLATILE_KEYS = ("dedup",)            # zset scores are processing times: members only


def dump_redis(client, prefix=DEFAULT_PREFIX, ttl=True, volatile=True):
    """The whole database as a normalized dict for equality tests:
    key -> {"type": t, "value": v[, "expire_at": s]}.

    hash -> {field: value} (str), set -> sorted list, zset -> {member: score}, string ->
    str, list -> list, stream -> list of {field: value} (entry ids dropped: they are
    arrival times). With volatile=True, what differs between two correct runs of the
    same input is left out: kpi:meta last_flush_ms, kpi:fence:* keys, the scores of
    kpi:dedup (a sorted list of members instead). expire_at is EXPIRETIME (absolute
    unix seconds, -1 without expiry)."""
    out = {}
    pre = prefix + ":"
    for raw in client.scan_iter(count=1000):
        key = _s(raw)
        rel = key[len(pre):] if key.startswith(pre) else None
        if volatile and rel is not None and any(re.fullmatch(p, rel) for p in VOLATILE_KEY_PATTERNS):
            continue
        t = _s(client.type(raw))
        if t == "hash":
            v = {_s(f): _s(x) for f, x in client.hgetall(raw).items()}
            if volatile and rel == "meta":
                for f in VOLATILE_META_FIELDS:
                    v.pop(f, None)
        elif t == "set":
            v = sorted(_s(x) for x in client.smembers(raw))
        elif t == "zset":
            pairs = client.zrange(raw, 0, -1, withscores=True)
            if volatile and rel in SCORES_VOLATILE_KEYS:
                v = sorted(_s(m) for m, _ in pairs)
            else:
                v = {_s(m): sc for m, sc in pairs}
        elif t == "string":
            v = _s(client.get(raw))
        elif t == "list":
            v = [_s(x) for x in client.lrange(raw, 0, -1)]
        elif t == "stream":
            v = [{_s(f): _s(x) for f, x in fields.items()} for _, fields in client.xrange(raw)]
        elif t == "none":  # expired between SCAN and TYPE
            continue
        else:
            v = "<%s>" % t
        entry = {"type": t, "value": v}
        if ttl:
            entry["expire_at"] = client.execute_command("EXPIRETIME", raw)
        out[key] = entry
    return out


def diff_dumps(expected, actual, limit=30):
    """Readable differences between two dumps (or any two dicts of dicts); '' if equal."""
    lines = []
    for k in sorted(set(expected) | set(actual)):
        if k not in actual:
            lines.append("missing key %s: expected %r" % (k, expected[k]))
        elif k not in expected:
            lines.append("unexpected key %s: %r" % (k, actual[k]))
        elif expected[k] != actual[k]:
            e, a = expected[k], actual[k]
            if isinstance(e, dict) and isinstance(a, dict):
                for f in sorted(set(e) | set(a), key=str):
                    if e.get(f) != a.get(f):
                        lines.append("%s [%s]: expected %r, got %r" % (k, f, e.get(f), a.get(f)))
            else:
                lines.append("%s: expected %r, got %r" % (k, e, a))
        if len(lines) >= limit:
            lines.append("... (more differences)")
            break
    return "\n".join(lines)


COUNTER_KEY_RE = r"(mgr:\{[^}]*\}|team:\{[^}]*\}|org):[dwmq]:[0-9A-Z-]+"


def counter_view(dump, prefix=DEFAULT_PREFIX):
    """The counter hashes of a dump (kpi:mgr/team/org:<period>, not :kpi/:rolling/...)
    as {key: {field: int}}, zero-valued fields and then empty keys dropped."""
    out = {}
    rx = re.compile(re.escape(prefix) + ":" + COUNTER_KEY_RE)
    for k, e in dump.items():
        if e["type"] != "hash" or not rx.fullmatch(k):
            continue
        fields = {f: int(v) for f, v in e["value"].items() if int(v) != 0}
        if fields:
            out[k] = fields
    return out


def expiry_view(dump, prefix=DEFAULT_PREFIX):
    """{counter key: EXPIRETIME} for the counter keys of a dump."""
    rx = re.compile(re.escape(prefix) + ":" + COUNTER_KEY_RE)
    return {k: e["expire_at"] for k, e in dump.items() if rx.fullmatch(k)}


def assert_same(expected, actual, what):
    d = diff_dumps(expected, actual)
    assert not d, "%s differ:\n%s" % (what, d)


# ---------------------------------------------------------------------------------
# the environment of one test


class Env:
    """Owns a temp directory and every process started through it; close() (or the
    `with` block, or the conftest fixture) kills them all, in reverse order."""

    def __init__(self, workdir=None):
        # A directory we made is removed by close(); a given one (pytest's tmp_path,
        # kept for post-mortems) is left alone.
        self._own_dir = workdir is None
        self.dir = workdir or tempfile.mkdtemp(prefix="kpitest-")
        os.makedirs(self.dir, exist_ok=True)
        self._owned = []
        self.kpids = []
        self._n = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _sub(self, name):
        self._n += 1
        d = os.path.join(self.dir, "%s%d" % (name, self._n))
        os.makedirs(d, exist_ok=True)
        return d

    def redis(self, appendonly=False, port=None, start=True, extra_args=(), acl=True):
        """A started RedisServer (start=False: configured, port reserved, not running);
        with the ACL users of config/redis-acl.conf unless acl=False."""
        r = RedisServer(self._sub("redis"), appendonly=appendonly, port=port, extra_args=extra_args,
                        acl=acl)
        self._owned.append(r)
        return r.start() if start else r

    def broker(self, topics=None, brokers=None, extra_args=(), strict=False):
        """A started DevBroker; default topics: events (4 partitions), DLQ, alerts."""
        if topics is None:
            topics = {EVENTS_TOPIC: 4, DLQ_TOPIC: 1, ALERTS_TOPIC: 1}
        b = DevBroker(self._sub("broker"), topics, brokers=brokers, extra_args=extra_args, strict=strict)
        self._owned.append(b)
        return b.start()

    def config(self, broker, redis, **over):
        """default_config for this broker and redis (kpid as the `kpid` ACL user, or as
        `default` on a server started with acl=False), with overrides deep-merged."""
        cfg = default_config(broker.bootstrap, redis.port, **over)
        return cfg if getattr(redis, "acl", True) else as_user(cfg, None)

    def write_config(self, cfg, name="kpid.json"):
        return write_config(os.path.join(self.dir, name), cfg)

    def kpid(self, cfg, name=None, start=True, extra_args=(), wrapper=(), any_user=False):
        """Writes cfg (a dict, or a path to an existing file) and starts kpid on it. A dict
        must connect as the `kpid` ACL user unless any_user=True (least privilege is
        tested by the whole suite, not by one file)."""
        if isinstance(cfg, dict) and not any_user:
            r = cfg.get("redis") or {}
            if r.get("user") != KPID_USER or not (r.get("password") or r.get("password_file")):
                raise HarnessError("kpid config with redis.user %r and no password: the tests "
                                   "run kpid as the %r ACL user (pass any_user=True to mean "
                                   "otherwise)" % (r.get("user"), KPID_USER))
        name = name or "kpid%d" % (len(self.kpids) + 1)
        path = cfg if isinstance(cfg, str) else self.write_config(cfg, name + ".json")
        k = Kpid(self.dir, path, name=name, extra_args=extra_args, wrapper=wrapper)
        self._owned.append(k)
        self.kpids.append(k)
        return k.start() if start else k

    def clean_run(self, messages, topics=None, timeout=120.0, **config_over):
        """The reference for crash tests: a fresh redis, broker and kpid consume
        `messages` ((key, value, partition) triples, so partitions and offsets match the
        run under test) once, cleanly. Returns (dump_redis(...), produced Msgs). Its
        processes stay owned by this Env."""
        redis = self.redis()
        broker = self.broker(topics)
        kpid = self.kpid(self.config(broker, redis, **config_over), name="kpid-clean%d" % self._n)
        msgs = produce(broker.bootstrap, EVENTS_TOPIC, messages)
        wait_consumed(redis.client(), len(msgs), kpid, timeout=timeout)
        assert_low_watermarks_zero(broker, list(broker.topics))
        rc = kpid.stop()
        if rc != 0:
            raise HarnessError("clean run: kpid exited %s\n%s" % (rc, kpid.log_tail()))
        dump = dump_redis(redis.client())
        redis.close()
        broker.close()
        return dump, msgs

    def logs(self, lines=60):
        """Tails of every kpid log (for failure reports)."""
        return "\n".join(k.log_tail(lines) for k in self.kpids)

    def sanitizer_reports(self):
        """{kpid name: report lines} for every kpid whose log has sanitizer reports."""
        out = {}
        for k in self.kpids:
            r = k.sanitizer_reports()
            if r:
                out[k.name] = r
        return out

    def close(self):
        errors = []
        for obj in reversed(self._owned):
            try:
                obj.close()
            except Exception as e:  # noqa: BLE001 - keep killing the rest
                errors.append(e)
        self._owned = []
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)
        if errors:
            raise errors[0]
