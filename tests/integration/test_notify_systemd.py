"""systemd notifications (issue 6): kpid run as a Type=notify service would be, with the
notification socket bound here: READY=1 once consuming, STATUS= lines, the watchdog fed
from the main loop (and not while the process is stopped), RELOADING=1 / READY=1 around
SIGHUP, STOPPING=1 on SIGTERM."""

import os
import shutil
import signal
import socket
import tempfile
import threading
import time

import pytest

import kpitest


class NotifySocket:
    """A unix datagram socket standing in for systemd's; records (monotonic time, message)."""

    def __init__(self):
        # sun_path holds 108 bytes: pytest's tmp_path can be longer.
        self.dir = tempfile.mkdtemp(prefix="kpin-", dir="/tmp")
        self.path = os.path.join(self.dir, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.messages = []
        self.lock = threading.Lock()
        self.running = True
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        while self.running:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.messages.append((time.monotonic(), data.decode("utf-8", "replace")))

    def since(self, t=0.0):
        with self.lock:
            return [(ts, m) for ts, m in self.messages if ts >= t]

    def fields(self, name, t=0.0):
        """(time, value) of every NAME=value line received since t, in order."""
        out = []
        for ts, m in self.since(t):
            for line in m.split("\n"):
                if line.startswith(name + "="):
                    out.append((ts, line[len(name) + 1:]))
        return out

    def wait(self, name, value=None, t=0.0, timeout=30.0, kpid=None):
        def found():
            hits = [x for x in self.fields(name, t) if value is None or x[1] == value]
            return hits[0] if hits else None
        return kpitest.wait_for(found, timeout, "%s=%s" % (name, value or "*"),
                                on_timeout=kpid.log_tail if kpid else None)

    def close(self):
        self.running = False
        self.sock.close()
        self.thread.join(5)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def notify_socket():
    n = NotifySocket()
    try:
        yield n
    finally:
        n.close()


def kicks(n, t0, t1):
    return [ts for ts, v in n.fields("WATCHDOG", t0) if v == "1" and ts < t1]


def test_notify_lifecycle(env, notify_socket, monkeypatch):
    n = notify_socket
    redis = env.redis()
    broker = env.broker()
    cfg = env.config(broker, redis)
    cfg["redis"]["timeout_ms"] = 3000
    # Only kpid inherits these (redis and the broker are already running).
    monkeypatch.setenv("NOTIFY_SOCKET", n.path)
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")
    kpid = env.kpid(cfg)
    monkeypatch.delenv("NOTIFY_SOCKET")
    monkeypatch.delenv("WATCHDOG_USEC")

    ready_at, _ = n.wait("READY", "1", kpid=kpid)
    assert not n.fields("STOPPING") and not n.fields("RELOADING")
    _, status = n.wait("STATUS", t=ready_at, kpid=kpid)
    assert status.startswith("consuming ") and "redis ok" in status, status
    assert "4 partitions" in status, status

    # WatchdogSec=1s: a kick at least every 0.5 s, from the loop.
    t0 = time.monotonic()
    time.sleep(3)
    got = kicks(n, t0, time.monotonic())
    # Loose bounds: the loop kicks between polls of up to 100 ms, on a busy 2-core machine,
    # maybe under ASan; the real limit is WatchdogSec itself.
    assert len(got) >= 4, got
    assert max(b - a for a, b in zip(got, got[1:])) < 1.0, got

    # Only the main loop feeds the watchdog: with the loop stuck in a Redis call (redis
    # frozen, timeout_ms 3000) the kicks stop while every other thread runs on, and
    # systemd would restart kpid.
    redis.proc.send_signal(signal.SIGSTOP)
    try:
        t_freeze = time.monotonic()
        time.sleep(4)
        got = kicks(n, t_freeze, time.monotonic())
        gaps = [b - a for a, b in zip([t_freeze] + got, got + [time.monotonic()])]
        assert max(gaps) > 2.0, got
    finally:
        redis.proc.send_signal(signal.SIGCONT)
    t_cont = time.monotonic()
    kpitest.wait_for(lambda: kicks(n, t_cont, time.monotonic() + 1), 10, "kicks after redis is back")

    t_hup = time.monotonic()
    kpid.signal(signal.SIGHUP)
    reloading_at, _ = n.wait("RELOADING", "1", t=t_hup, kpid=kpid)
    ready_again, _ = n.wait("READY", "1", t=reloading_at, kpid=kpid)
    kpid.wait_log(r"reloaded ")
    assert ready_again >= reloading_at

    t_term = time.monotonic()
    kpid.signal(signal.SIGTERM)
    assert kpid.wait(30) == 0
    _, stopping = n.wait("STOPPING", "1", t=t_term, kpid=kpid, timeout=5)
    # Nothing after STOPPING=1 claims readiness again.
    stop_at = n.fields("STOPPING", t_term)[0][0]
    assert n.fields("READY", stop_at) == []
