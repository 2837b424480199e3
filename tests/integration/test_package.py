"""The Debian package (issue 6): CPack builds kpid_<version>_<arch>.deb from this build tree;
its files, modes, control fields, conffiles, man pages and maintainer scripts are checked,
the scripts run against stubs that record what they would do to the system, and (as root)
dpkg itself installs, upgrades, removes and purges it in a scratch root."""

import gzip
import io
import os
import re
import shutil
import stat
import subprocess
import tarfile

import pytest

import kpitest

CONF = "/etc/kpid/kpid.json"
REQUIRED_DEPENDS = ["librdkafka1", "libhiredis0.14", "libyajl2", "libmicrohttpd12", "libsystemd0"]

# Every regular file of the package: path -> mode. Nothing else may be in it (in particular
# not the dev broker, the generator or the benchmark).
EXPECTED_FILES = {
    "usr/bin/kpid": 0o755,
    "usr/bin/kpictl": 0o755,
    "lib/systemd/system/kpid.service": 0o644,
    "usr/lib/sysusers.d/kpid.conf": 0o644,
    "etc/kpid/kpid.json": 0o640,
    "usr/share/doc/kpid/kpid.example.jsonc": 0o644,
    "usr/share/doc/kpid/copyright": 0o644,
    "usr/share/doc/kpid/changelog.Debian.gz": 0o644,
    "usr/share/man/man8/kpid.8.gz": 0o644,
    "usr/share/man/man1/kpictl.1.gz": 0o644,
}
# Installed files that are copies of a file of the source tree.
SOURCE_COPIES = {
    "lib/systemd/system/kpid.service": "systemd/kpid.service",
    "usr/lib/sysusers.d/kpid.conf": "systemd/kpid.sysusers",
    "etc/kpid/kpid.json": "config/kpid.package.json",
    "usr/share/doc/kpid/kpid.example.jsonc": "config/kpid.example.jsonc",
    "usr/share/doc/kpid/copyright": "systemd/deb/copyright",
}
# Directories whose mode is not 0755: the unit's LoadCredential= source (root only).
SPECIAL_DIRS = {"etc/kpid/credentials": 0o700}
MAN_PAGES = {"kpid": "usr/share/man/man8/kpid.8.gz", "kpictl": "usr/share/man/man1/kpictl.1.gz"}


def run(argv, **kw):
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    kw.setdefault("timeout", 60)
    return subprocess.run(argv, stdin=subprocess.DEVNULL, **kw)


def project_version():
    with open(os.path.join(kpitest.SRC, "CMakeLists.txt")) as f:
        m = re.search(r"project\(\s*kpid\s+VERSION\s+([0-9.]+)", f.read())
    assert m, "no project(kpid VERSION ...) in CMakeLists.txt"
    return m.group(1)


def src(rel):
    return os.path.join(kpitest.SRC, rel)


class Package:
    def __init__(self, path, root, control):
        self.path, self.root, self.control = path, root, control

    def fields(self):
        r = run(["dpkg-deb", "-f", self.path])
        assert r.returncode == 0, r.stderr
        out, key = {}, None
        for line in r.stdout.splitlines():
            if line[:1] in (" ", "\t") and key:
                out[key] += "\n" + line
            elif ":" in line:
                key, _, value = line.partition(":")
                out[key] = value.strip()
        return out


@pytest.fixture(scope="module")
def pkg(tmp_path_factory):
    kpitest.binary("kpid")  # fails clearly when KPI_BUILD is not a build tree
    config = os.path.join(kpitest.BUILD, "CPackConfig.cmake")
    assert os.path.exists(config), "%s missing: include(CPack) in CMakeLists.txt" % config
    out = tmp_path_factory.mktemp("cpack")
    r = run(["cpack", "--config", config, "-B", str(out)], cwd=kpitest.BUILD, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    arch = run(["dpkg", "--print-architecture"]).stdout.strip()
    path = out / ("kpid_%s_%s.deb" % (project_version(), arch))
    assert path.exists(), "no %s among %s" % (path.name, sorted(os.listdir(out)))
    root = tmp_path_factory.mktemp("root")
    control = tmp_path_factory.mktemp("control") / "DEBIAN"
    for argv in (["dpkg-deb", "-x", str(path), str(root)], ["dpkg-deb", "-e", str(path), str(control)]):
        r = run(argv)
        assert r.returncode == 0, r.stderr
    return Package(str(path), str(root), str(control))


# ---- contents -----------------------------------------------------------------------------


def test_files_modes_and_owners(pkg):
    """The data archive itself (not the extracted copy, whose owners depend on who ran
    dpkg-deb): exactly the expected files, with their modes, owned by root."""
    data = run(["dpkg-deb", "--fsys-tarfile", pkg.path], text=False).stdout
    files, dirs = {}, {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for m in tar.getmembers():
            name = m.name[2:] if m.name.startswith("./") else m.name
            assert (m.uid, m.gid) == (0, 0), "%s owned by %d:%d" % (name, m.uid, m.gid)
            if m.isfile():
                files[name] = stat.S_IMODE(m.mode)
            else:
                assert m.isdir(), "%s is neither a file nor a directory" % name
                dirs[name.rstrip("/")] = stat.S_IMODE(m.mode)
    assert files == EXPECTED_FILES
    for name, mode in dirs.items():
        assert mode == SPECIAL_DIRS.get(name, 0o755), "%s: mode %o" % (name, mode)
    assert set(SPECIAL_DIRS) <= set(dirs)


def test_files_equal_their_sources(pkg):
    for installed, source in SOURCE_COPIES.items():
        with open(os.path.join(pkg.root, installed), "rb") as a, open(src(source), "rb") as b:
            assert a.read() == b.read(), "%s differs from %s" % (installed, source)


def test_binaries_run_from_the_package(pkg):
    kpid = os.path.join(pkg.root, "usr/bin/kpid")
    r = run([kpid, "--version"])
    assert (r.returncode, r.stdout) == (0, "kpid %s\n" % project_version()), r.stderr
    # The shipped configuration is one kpid accepts.
    r = run([kpid, "-c", os.path.join(pkg.root, CONF[1:]), "--check-config"])
    assert r.returncode == 0, r.stdout + r.stderr
    # kpictl without arguments prints its usage and exits 2 (it loads, its libraries resolve).
    r = run([os.path.join(pkg.root, "usr/bin/kpictl")])
    assert r.returncode == 2 and "usage: kpictl" in r.stderr, r.stdout + r.stderr
    # Stripped: no symbol table in an installed binary.
    for name in ("kpid", "kpictl"):
        r = run(["readelf", "-S", "-W", os.path.join(pkg.root, "usr/bin", name)])
        assert r.returncode == 0 and ".symtab" not in r.stdout, name


def test_control_fields(pkg):
    f = pkg.fields()
    arch = run(["dpkg", "--print-architecture"]).stdout.strip()
    assert f["Package"] == "kpid"
    assert f["Version"] == project_version()
    assert f["Architecture"] == arch
    assert f["Section"] == "admin"
    assert re.fullmatch(r".+ <[^@ ]+@[^@ ]+>", f["Maintainer"]), f["Maintainer"]
    summary, _, long_desc = f["Description"].partition("\n")
    assert summary == "live sales KPIs from Kafka into Redis"
    assert long_desc.strip() and all(l.startswith(" ") for l in long_desc.splitlines())
    depends = [d.strip().split()[0] for d in f["Depends"].split(",")]
    for lib in REQUIRED_DEPENDS:
        assert lib in depends, "Depends lacks %s: %s" % (lib, f["Depends"])
    # Nothing from the build or the tests leaks into the runtime dependencies.
    for name in depends:
        assert not name.endswith("-dev") and name not in ("libcmocka0",), f["Depends"]


def test_conffiles_and_scripts(pkg):
    with open(os.path.join(pkg.control, "conffiles")) as fh:
        assert fh.read() == CONF + "\n"
    for name in ("postinst", "prerm", "postrm"):
        path = os.path.join(pkg.control, name)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o755, name
        with open(path, "rb") as a, open(src("systemd/deb/" + name), "rb") as b:
            body = a.read()
            assert body == b.read(), name
        assert body.startswith(b"#!/bin/sh\n") and b"\nset -e\n" in body, name
        r = run(["sh", "-n", path])
        assert r.returncode == 0, (name, r.stderr)
        if shutil.which("dash"):
            r = run(["dash", "-n", path])
            assert r.returncode == 0, (name, r.stderr)


def test_docs(pkg):
    with gzip.open(os.path.join(pkg.root, "usr/share/doc/kpid/changelog.Debian.gz"), "rt") as fh:
        first = fh.readline()
    assert first.startswith("kpid (%s) " % project_version()), first


def gzip_header_is_reproducible(path):
    with open(path, "rb") as fh:
        head = fh.read(10)
    # RFC 1952: FLG at 3 (no FNAME bit 0x08), MTIME at 4..7 zero: gzip -n.
    return head[:2] == b"\x1f\x8b" and not head[3] & 0x08 and head[4:8] == b"\0\0\0\0"


def render(path):
    """The page as text, and what groff warned (every warning enabled)."""
    with gzip.open(path, "rb") as fh:
        source = fh.read()
    env = dict(os.environ, LC_ALL="C.UTF-8")
    r = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-rLL=100n"], input=source,
                       capture_output=True, env=env, timeout=30)
    assert r.returncode == 0, r.stderr
    text = re.sub(r".\x08", "", r.stdout.decode("utf-8"))
    # Hyphens may come out as U+2010 and lines may be hyphenated: compare words loosely.
    text = text.replace("\u2010", "-").replace("\u2212", "-")
    return source.decode("utf-8"), text, r.stderr.decode("utf-8")


def test_man_pages_render_cleanly_and_cover_the_help(pkg):
    kpid_src, kpid_txt, warn = render(os.path.join(pkg.root, MAN_PAGES["kpid"]))
    assert warn == ""
    ctl_src, ctl_txt, warn = render(os.path.join(pkg.root, MAN_PAGES["kpictl"]))
    assert warn == ""
    for path in MAN_PAGES.values():
        assert gzip_header_is_reproducible(os.path.join(pkg.root, path)), path
    assert kpid_src == open(src("daemon/kpid.8")).read()
    assert ctl_src == open(src("tools/kpictl.1")).read()

    flat = lambda t: re.sub(r"-\n\s*", "-", re.sub(r"\s+", " ", t))  # noqa: E731
    kpid_flat, ctl_flat = flat(kpid_txt), flat(ctl_txt)
    # Every option kpid --help lists, every signal, exit code and variable is documented.
    help_text = run([kpitest.binary("kpid"), "--help"]).stdout
    options = set(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", help_text))
    assert {"-c", "--config", "--check-config", "--version", "--help"} <= options
    for opt in options:
        assert re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(opt), kpid_flat), opt
    for word in ("SIGTERM", "SIGINT", "SIGHUP", "EXIT STATUS", "CREDENTIALS_DIRECTORY",
                 "JOURNAL_STREAM", "NOTIFY_SOCKET", CONF, "kpid.service"):
        assert word in kpid_flat, word
    for code in ("0", "1", "2"):
        assert re.search(r"EXIT STATUS.*\n\s+%s\s" % code, kpid_txt, re.S), code

    # Every kpictl command and option in its usage text, and the commands.
    r = run([kpitest.binary("kpictl")])
    usage = r.stdout + r.stderr
    assert "usage: kpictl" in usage, usage
    r = run([kpitest.binary("kpictl"), "--help"])
    full_help = r.stdout if r.returncode == 0 else ""
    commands = {"manager", "team", "top", "alerts", "watch", "board", "funnel", "meta"}
    for line in usage.splitlines():
        words = line.replace("usage:", "").split()
        if words[:1] == ["kpictl"]:
            rest = [w for w in words[1:] if not w.startswith(("-", "[")) and w != "FILE"]
            if rest and re.fullmatch(r"[a-z]+", rest[0]):
                commands.add(rest[0])
    usage_opts = set(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", usage + full_help))
    usage_opts |= {"--json", "--period", "--watch", "-n", "--scope"}
    for cmd in commands:
        assert re.search(r"(?m)^ {7}%s\b" % cmd, ctl_txt), "kpictl.1 lacks command %s" % cmd
    for opt in usage_opts:
        assert re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(opt), ctl_flat), opt
    assert "EXIT STATUS" in ctl_flat and CONF in ctl_flat


# ---- maintainer scripts against stubs -----------------------------------------------------

STUB = """#!/bin/sh
echo "$(basename "$0") $*" >> "$STUB_LOG"
%s
"""
# systemd-sysusers under DPKG_ROOT creates the group in that root, as the real one does.
SYSUSERS_STUB = STUB % """for a; do case "$a" in --root=*) r=${a#--root=};
  mkdir -p "$r/etc"; grep -q '^kpid:' "$r/etc/group" 2>/dev/null ||
  echo "kpid:x:4242:" >> "$r/etc/group";; esac; done"""
REAL_TOOLS = ("chmod", "rm", "awk", "mkdir", "basename", "grep")


class Stubs:
    """A PATH holding only recording stubs and the few real tools the scripts may use."""

    def __init__(self, base, sysusers=True):
        self.dir = os.path.join(base, "bin")
        self.log = os.path.join(base, "calls.log")
        os.makedirs(self.dir)
        stubs = {"systemctl": STUB % "exit 0", "chown": STUB % "exit 0",
                 "adduser": STUB % "exit 0", "deb-systemd-helper": STUB % "exit 0",
                 "deb-systemd-invoke": STUB % "exit 0",
                 "getent": STUB % "exit 2",               # no user kpid yet
                 "dpkg-statoverride": STUB % "exit 1"}    # no override
        if sysusers:
            stubs["systemd-sysusers"] = SYSUSERS_STUB
        for name, body in stubs.items():
            p = os.path.join(self.dir, name)
            with open(p, "w") as fh:
                fh.write(body)
            os.chmod(p, 0o755)
        for name in REAL_TOOLS:
            os.symlink(shutil.which(name), os.path.join(self.dir, name))

    def calls(self):
        if not os.path.exists(self.log):
            return []
        with open(self.log) as fh:
            calls = fh.read().splitlines()
        os.unlink(self.log)
        return calls

    def env(self, **extra):
        env = {"PATH": self.dir, "STUB_LOG": self.log, "LC_ALL": "C"}
        env.update(extra)
        return env


def script(pkg, name):
    return os.path.join(pkg.control, name)


def test_scripts_under_dpkg_root_touch_only_that_root(pkg, tmp_path):
    """With DPKG_ROOT (dpkg --root ... --force-script-chrootless) the scripts create the user
    in that root, give the root's kpid group the configuration, and leave systemd alone."""
    stubs = Stubs(str(tmp_path))
    root = tmp_path / "root"
    (root / "etc/kpid").mkdir(parents=True)
    conf = root / "etc/kpid/kpid.json"
    conf.write_text("{}")
    os.chmod(conf, 0o644)
    env = stubs.env(DPKG_ROOT=str(root))
    # A first install and an upgrade do the same: idempotent, and no systemctl either way.
    for args in (["configure", ""], ["configure", "0.0.9"]):
        r = run(["/bin/sh", script(pkg, "postinst")] + args, env=env)
        assert r.returncode == 0, r.stdout + r.stderr
        assert stubs.calls() == ["systemd-sysusers --root=%s kpid.conf" % root,
                                 "dpkg-statoverride --list %s" % CONF,
                                 "chown 0:4242 %s" % conf], args
    assert stat.S_IMODE(os.stat(conf).st_mode) == 0o640
    r = run(["/bin/sh", script(pkg, "prerm"), "remove"], env=env)
    assert r.returncode == 0 and stubs.calls() == [], r.stderr
    r = run(["/bin/sh", script(pkg, "postrm"), "remove"], env=env)
    assert r.returncode == 0 and stubs.calls() == [] and conf.exists(), r.stderr
    (root / "etc/other").write_text("keep")
    r = run(["/bin/sh", script(pkg, "postrm"), "purge"], env=env)
    assert r.returncode == 0 and stubs.calls() == [], r.stderr
    assert not (root / "etc/kpid").exists() and (root / "etc/other").exists()
    # Arguments dpkg never passes are refused.
    for name in ("postinst", "prerm", "postrm"):
        r = run(["/bin/sh", script(pkg, name), "bogus"], env=env)
        assert r.returncode == 1 and "unknown argument 'bogus'" in r.stderr, name


def can_sandbox():
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    r = run(["unshare", "-m", "sh", "-c", "mount -t tmpfs none /mnt"])
    return r.returncode == 0


# Runs the script in a private mount namespace: /etc is an overlay (writes vanish with the
# namespace) holding /etc/kpid/kpid.json, and /run a tmpfs with or without
# /run/systemd/system, the marker of a system booted with systemd.
SANDBOX = r"""set -e
scratch=$1; booted=$2; shift 2
mount -t tmpfs none "$scratch"
mkdir "$scratch/u" "$scratch/w"
mount -t overlay overlay -o "lowerdir=/etc,upperdir=$scratch/u,workdir=$scratch/w" /etc
mount -t tmpfs none /run
[ "$booted" = no ] || mkdir -p /run/systemd/system
mkdir -p /etc/kpid; printf '{}' > /etc/kpid/kpid.json; chmod 0644 /etc/kpid/kpid.json
echo keep > /etc/kpid/extra
env -i PATH="$STUBS" STUB_LOG="$STUB_LOG" /bin/sh "$@"
rc=$?
# What the script left, for the test to check.
if [ -e /etc/kpid/kpid.json ]; then stat -c 'conf %a' /etc/kpid/kpid.json; else echo 'conf gone'; fi
if [ -e /etc/kpid ]; then echo 'dir kept'; else echo 'dir gone'; fi
exit $rc
"""


@pytest.mark.skipif(not can_sandbox(), reason="needs root and mount namespaces (unshare -m)")
@pytest.mark.parametrize("sysusers", [True, False])
def test_scripts_on_a_live_system(pkg, tmp_path, sysusers):
    stubs = Stubs(str(tmp_path), sysusers=sysusers)
    scratch = tmp_path / "scratch"
    scratch.mkdir()

    def sandbox(booted, name, *args):
        env = dict(os.environ, STUBS=stubs.dir, STUB_LOG=stubs.log)
        r = run(["unshare", "-m", "sh", "-c", SANDBOX, "sandbox", str(scratch), booted,
                 script(pkg, name)] + list(args), env=env)
        assert r.returncode == 0, (name, args, r.stdout, r.stderr)
        return r.stdout.splitlines(), stubs.calls()

    user = (["systemd-sysusers kpid.conf"] if sysusers else
            ["getent passwd kpid",
             "adduser --system --group --quiet --no-create-home --home /nonexistent "
             "--shell /usr/sbin/nologin --gecos kpid kpid"])
    secure = ["dpkg-statoverride --list %s" % CONF, "chown root:kpid %s" % CONF]
    # First install: the user, the configuration's owner and mode, daemon-reload; the
    # service is neither enabled nor started (its configuration needs editing first).
    out, calls = sandbox("yes", "postinst", "configure", "")
    assert out == ["conf 640", "dir kept"]
    assert calls == user + secure + ["systemctl --system daemon-reload"]
    # Upgrade: the same, then a running kpid is restarted onto the new binary.
    out, calls = sandbox("yes", "postinst", "configure", "0.0.9")
    assert calls == user + secure + ["systemctl --system daemon-reload",
                                     "systemctl try-restart kpid.service"]
    # Not booted with systemd (a container, a chroot): systemctl is never called.
    out, calls = sandbox("no", "postinst", "configure", "0.0.9")
    assert out == ["conf 640", "dir kept"] and calls == user + secure

    out, calls = sandbox("yes", "prerm", "remove")
    assert calls == ["systemctl stop kpid.service"]
    out, calls = sandbox("yes", "prerm", "upgrade", "0.2.0")
    assert calls == []
    out, calls = sandbox("no", "prerm", "remove")
    assert calls == []

    out, calls = sandbox("yes", "postrm", "remove")
    assert out == ["conf 644", "dir kept"] and calls == ["systemctl --system daemon-reload"]
    out, calls = sandbox("yes", "postrm", "upgrade", "0.2.0")
    assert out == ["conf 644", "dir kept"] and calls == []
    out, calls = sandbox("yes", "postrm", "purge")
    assert out == ["conf gone", "dir gone"] and calls == ["systemctl --system daemon-reload"]
    out, calls = sandbox("no", "postrm", "purge")
    assert out == ["conf gone", "dir gone"] and calls == []


# ---- dpkg itself, in a scratch root -------------------------------------------------------


@pytest.mark.skipif(os.geteuid() != 0, reason="dpkg --root needs root to give files to root")
def test_dpkg_install_upgrade_remove_purge(pkg, tmp_path):
    root = tmp_path / "root"
    admin = root / "var/lib/dpkg"
    for d in ("info", "updates", "triggers"):
        (admin / d).mkdir(parents=True)
    (admin / "status").touch()
    (admin / "available").touch()

    def dpkg(*args):
        r = run(["dpkg", "--root=%s" % root, "--log=%s" % (tmp_path / "dpkg.log"),
                 "--force-script-chrootless", "--force-depends", "--force-confold"] + list(args))
        assert r.returncode == 0, (args, r.stdout, r.stderr)
        return r

    def status():
        r = run(["dpkg-query", "--admindir=%s" % admin, "-W", "-f=${Status}", "kpid"])
        return r.stdout if r.returncode == 0 else "unknown"

    conf = root / CONF[1:]
    dpkg("-i", pkg.path)
    assert status() == "install ok installed"
    for path, mode in EXPECTED_FILES.items():
        assert stat.S_IMODE(os.stat(root / path).st_mode) == mode, path
    with open(root / "etc/group") as fh:
        gid = [int(l.split(":")[2]) for l in fh if l.startswith("kpid:")]
    with open(root / "etc/passwd") as fh:
        user = [l.rstrip("\n").split(":") for l in fh if l.startswith("kpid:")]
    assert len(gid) == 1 and len(user) == 1 and user[0][3] == str(gid[0])
    assert user[0][6] == "/usr/sbin/nologin"
    st = os.stat(conf)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, gid[0], 0o640)
    st = os.stat(root / "etc/kpid/credentials")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o700)

    # Reinstall (an upgrade to the same version): the administrator's configuration, its
    # owner and mode are kept; the user is not created twice.
    conf.write_text('{"kafka": {"brokers": "kafka1:9092", "topics": ["t"]}}\n')
    dpkg("-i", pkg.path)
    assert conf.read_text() == '{"kafka": {"brokers": "kafka1:9092", "topics": ["t"]}}\n'
    st = os.stat(conf)
    assert (st.st_gid, stat.S_IMODE(st.st_mode)) == (gid[0], 0o640)
    with open(root / "etc/passwd") as fh:
        assert sum(l.startswith("kpid:") for l in fh) == 1

    (root / "etc/kpid/credentials/redis-password").write_text("secret")
    dpkg("-r", "kpid")
    assert status() == "deinstall ok config-files"
    for path in EXPECTED_FILES:
        assert os.path.exists(root / path) == (path == CONF[1:]), path
    assert (root / "etc/kpid/credentials/redis-password").read_text() == "secret"
    dpkg("-P", "kpid")
    assert status() in ("unknown", "not-installed", "purge ok not-installed")
    assert not (root / "etc/kpid").exists()
    with open(root / "etc/passwd") as fh:   # system users stay (Debian policy)
        assert sum(l.startswith("kpid:") for l in fh) == 1
