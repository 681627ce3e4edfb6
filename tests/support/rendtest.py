"""Support for rend's process tests: real binaries, real memcached, free ports, temp dirs.

Everything started here is stopped by the test's cleanup (addCleanup), and every wait has a hard
deadline, so a broken build fails a test instead of hanging it. The build directory comes from
the REND_BUILD_DIR environment variable that CTest sets.
"""
import json
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import unittest

BUILD_DIR = os.environ.get("REND_BUILD_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "build"))
REND = os.path.join(BUILD_DIR, "supervisor", "rend")
# Set by make test-sanitize: ASan holds freed memory in quarantine and adds its shadow, so what a
# process's RSS says about rend's own buffers means nothing there.
SANITIZED = os.environ.get("REND_SANITIZED") == "1"
RENDCTL = os.path.join(BUILD_DIR, "supervisor", "rendctl")
MEMCACHED = shutil.which("memcached") or "/usr/bin/memcached"


def metric(text, name, **labels):
    """Sum of the samples of `name` whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = re.match(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$', line)
        if not m or m.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', m.group(3) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(m.group(4))
    return total


# Ports for the servers a test starts, taken below Linux's ephemeral range (32768-60999 by default):
# a port the kernel handed out there could be taken, before the server binds it, by any client
# socket of a test running in parallel (a load generator opens thousands).
_SERVER_PORTS = (20000, 32767)
_port_rng = random.Random()  # seeded from the OS: parallel test processes pick apart


def free_port():
    for _ in range(500):
        port = _port_rng.randint(*_SERVER_PORTS)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout, interval=0.02, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def port_accepts(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def unix_accepts(path):
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(0.2)
            s.connect(path)
            return True
    except OSError:
        return False


class Memcached:
    """A memcached of our own, on a TCP port or a unix socket."""

    def __init__(self, tmpdir, memory_mb=64, unix=False, extra=()):
        self.port = None if unix else free_port()
        self.path = os.path.join(tmpdir, f"mc-{os.getpid()}-{time.monotonic_ns()}.sock") if unix else None
        args = [MEMCACHED, "-m", str(memory_mb), "-t", "2", "-U", "0"]
        args += ["-s", self.path] if unix else ["-l", "127.0.0.1", "-p", str(self.port)]
        if os.geteuid() == 0:
            args += ["-u", "root"]
        args += list(extra)
        self.args = args
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if self.path:
            wait_until(lambda: unix_accepts(self.path), 10, what="memcached socket")
        else:
            wait_until(lambda: port_accepts(self.port), 10, what="memcached port")
        return self

    @property
    def address(self):
        return self.path if self.path else f"127.0.0.1:{self.port}"

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Rend:
    """The rend supervisor with a config of our own in a temp dir.

    By default it supervises its own memcached (as `make run` does); pass l1_address to put it in
    front of a memcached the test controls instead.
    """

    def __init__(self, tmpdir, workers=2, l1_address=None, memory_mb=64, config=None, binary=None, env=None):
        self.tmpdir = tmpdir
        self.env = dict(os.environ, **(env or {}))
        self.binary = binary or REND  # the supervisor finds rend-worker and rend-l2 next to it
        self.port = free_port()
        self.metrics_port = free_port()
        self.run_dir = os.path.join(tmpdir, "run")
        self.control_socket = os.path.join(self.run_dir, "rend.ctl")
        cfg = {
            "workers": workers,
            "run_dir": self.run_dir,
            "listen": {"host": "127.0.0.1", "port": self.port},
            "l1": {"address": l1_address or os.path.join(self.run_dir, "memcached.sock")},
            "memcached": {"enabled": l1_address is None, "memory_mb": memory_mb, "threads": 2},
            "supervisor": {"stop_timeout_ms": 10000},
            "metrics": {"listen": f"127.0.0.1:{self.metrics_port}"},
            "control": {"socket": self.control_socket},
        }
        for key, value in (config or {}).items():
            if isinstance(value, dict):
                cfg.setdefault(key, {}).update(value)
            else:
                cfg[key] = value
        self.config = cfg
        self.config_path = os.path.join(tmpdir, "rend.json")
        self.write_config(cfg)
        self.log_path = os.path.join(tmpdir, "rend.log")
        self.proc = None

    def write_config(self, cfg):
        with open(self.config_path, "w") as f:
            json.dump(cfg, f)

    def start(self, wait_workers=True):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([self.binary, "--config", self.config_path], stdout=self.log, stderr=self.log,
                                     start_new_session=True, env=self.env)
        wait_until(lambda: port_accepts(self.port) or self.proc.poll() is not None, 15, what="rend port")
        if self.proc.poll() is not None:
            raise AssertionError(f"rend exited with {self.proc.returncode}:\n{self.read_log()}")
        if wait_workers:
            wait_until(lambda: len(self.worker_pids()) == self.config["workers"], 15, what="workers")
            c = Client(self.port)
            wait_until(lambda: c.call(b"version\r\n").startswith(b"VERSION"), 10, what="a worker answering")
            c.close()
            wait_until(self.all_workers_ready, 15, what="every worker ready")
        return self

    def all_workers_ready(self):
        """True once rendctl reports every configured worker slot ready (not starting, not failed)."""
        out = self.rendctl("--json", "status", timeout=10)
        if out.returncode != 0:
            return False
        workers = json.loads(out.stdout).get("workers", [])
        return len(workers) == self.config["workers"] and all(w.get("state") == "ready" for w in workers)

    def read_log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def children(self):
        """pids of the supervisor's direct children, with their command lines."""
        out = {}
        if not self.proc:
            return out
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/stat") as f:
                    stat = f.read()
                ppid = int(stat[stat.rindex(")") + 2:].split()[1])
                if ppid != self.proc.pid:
                    continue
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmd = f.read().split(b"\0")
                state = stat[stat.rindex(")") + 2]
                if state != "Z":
                    out[int(pid)] = cmd
            except (OSError, ValueError):
                continue
        return out

    def worker_pids(self):
        """{slot: pid} of running workers."""
        slots = {}
        for pid, cmd in self.children().items():
            if cmd and cmd[0].endswith(b"rend-worker"):
                slots[int(cmd[cmd.index(b"--slot") + 1])] = pid
        return slots

    def memcached_pid(self):
        for pid, cmd in self.children().items():
            if cmd and b"memcached" in os.path.basename(cmd[0]):
                return pid
        return None

    def l2_pid(self):
        for pid, cmd in self.children().items():
            if cmd and os.path.basename(cmd[0]) == b"rend-l2":
                return pid
        return None

    def rendctl(self, *args, timeout=60):
        """Runs rendctl against this rend; returns the CompletedProcess."""
        return subprocess.run([RENDCTL, "--socket", self.control_socket, *args], capture_output=True, text=True,
                              timeout=timeout)

    def scrape(self):
        """The /metrics text."""
        import urllib.request
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
            return r.read().decode()

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=20):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self.proc:
            # Nothing of ours may outlive the test, whatever happened.
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if getattr(self, "log", None):
            self.log.close()


class Client:
    """A blocking memcached client over raw bytes, with a timeout on every read."""

    def __init__(self, port=None, host="127.0.0.1", timeout=5.0, path=None):
        if path:
            self.sock = socket.socket(socket.AF_UNIX)
            self.sock.settimeout(timeout)
            self.sock.connect(path)
        else:
            self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""

    def close(self):
        self.sock.close()

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self):
        data = self.sock.recv(1 << 20)
        if not data:
            raise ConnectionError("closed by server")
        self.buf += data

    def read_line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line + b"\r\n"

    def read_exact(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_until(self, terminator):
        while terminator not in self.buf:
            self._fill()
        i = self.buf.index(terminator) + len(terminator)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def read_available(self, wait=0.3):
        """Everything that arrives within `wait` seconds of silence; b'<CLOSED>' marks a close."""
        out = self.buf
        self.buf = b""
        self.sock.settimeout(wait)
        try:
            while True:
                d = self.sock.recv(1 << 20)
                if not d:
                    out += b"<CLOSED>"
                    break
                out += d
        except socket.timeout:
            pass
        except ConnectionResetError:
            out += b"<CLOSED>"
        return out

    def call(self, data):
        """Sends one text command and reads its one-line reply (or through END for reads)."""
        self.send(data)
        line = self.read_line()
        if line.startswith(b"VALUE"):
            return line + self.read_until(b"END\r\n")
        if line.startswith(b"STAT"):
            return line + self.read_until(b"END\r\n")
        return line

    # Text commands.
    def set(self, key, value, flags=0, exptime=0, cmd=b"set"):
        return self.call(b"%s %s %d %d %d\r\n%s\r\n" % (cmd, key, flags, exptime, len(value), value))

    def get(self, key):
        """The value, or None on a miss."""
        reply = self.call(b"get " + key + b"\r\n")
        if reply == b"END\r\n":
            return None
        if not reply.startswith(b"VALUE "):
            raise AssertionError(f"get {key!r}: {reply[:200]!r}")
        header, rest = reply.split(b"\r\n", 1)
        n = int(header.split()[3])
        return rest[:n]

    def stats(self):
        reply = self.call(b"stats\r\n")
        out = {}
        for line in reply.split(b"\r\n"):
            parts = line.split(b" ", 2)
            if len(parts) == 3 and parts[0] == b"STAT":
                out[parts[1].decode()] = parts[2].decode()
        return out


def binary_request(opcode, key=b"", value=b"", extras=b"", opaque=0, cas=0, data_type=0):
    header = struct.pack(">BBHBBHIIQ", 0x80, opcode, len(key), len(extras), data_type, 0,
                         len(extras) + len(key) + len(value), opaque, cas)
    return header + extras + key + value


def read_binary_response(client):
    header = client.read_exact(24)
    magic, opcode, keylen, extlen, data_type, status, bodylen, opaque, cas = struct.unpack(">BBHBBHIIQ", header)
    body = client.read_exact(bodylen)
    return {"magic": magic, "opcode": opcode, "status": status, "opaque": opaque, "cas": cas, "data_type": data_type,
            "extras": body[:extlen], "key": body[extlen:extlen + keylen], "value": body[extlen + keylen:]}


class ProcessTest(unittest.TestCase):
    """Base class: a temp dir per test, and rend's log printed when a test fails."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="rendtest-", dir="/tmp")
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        self._rends = []

    def start_memcached(self, **kw):
        m = Memcached(self.tmp, **kw).start()
        self.addCleanup(m.stop)
        return m

    def start_rend(self, **kw):
        r = Rend(self.tmp, **kw)
        self.addCleanup(self._stop_rend, r)
        self._rends.append(r)
        return r.start()

    def _stop_rend(self, r):
        r.stop()
        outcome = getattr(self, "_outcome", None)
        failed = outcome is not None and not getattr(outcome, "success", True)
        if failed or os.environ.get("REND_TEST_VERBOSE"):
            print(f"\n---- rend log ({r.log_path}) ----\n{r.read_log()[-8000:]}")

    def client(self, port, **kw):
        c = Client(port, **kw)
        self.addCleanup(c.close)
        return c
