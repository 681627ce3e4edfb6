"""Process plumbing for the benchmark: start/stop servers, find free ports,
wait until a server answers, and read CPU time from /proc.

Everything here is stdlib only, so `make bench` needs nothing beyond python3.
"""

import os
import signal
import socket
import subprocess
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    """A failure that makes one target (or the whole run) unusable."""


class Skip(Exception):
    """Something this machine or build cannot measure (a missing tool or
    option): reported as skipped, with the reason, and not a failure."""


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --------------------------------------------------------------------------
# ports and sockets

def free_port():
    """Ask the kernel for a free loopback port.

    There is a small window between closing this socket and the server
    binding it; on a quiet bench machine that is good enough, and a clash
    shows up as a failed start, never as a wrong measurement.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def connect(address, timeout=2.0):
    """Connect to "host:port" or to a unix socket path (anything with a '/')."""
    if "/" in address:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        target = address
    else:
        host, port = address.rsplit(":", 1)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        target = (host, int(port))
    s.settimeout(timeout)
    try:
        s.connect(target)
    except OSError:
        s.close()
        raise
    return s


def text_exchange(address, request, until, timeout=2.0):
    """Send a memcached text request; read until the reply ends with `until`."""
    with connect(address, timeout) as s:
        s.sendall(request)
        reply = b""
        while not reply.endswith(until):
            chunk = s.recv(4096)
            if not chunk:
                break
            reply += chunk
        return reply


def roundtrip_ok(address):
    """True when a set followed by a get of the same key works.

    A set+get (rather than `version`) proves the whole path: a proxy that is
    listening but cannot reach its memcached fails this check. nutcracker
    does not implement `version`, another reason to use set/get.
    """
    try:
        stored = text_exchange(address, b"set bench:ready 0 0 2\r\nok\r\n", b"\r\n")
        if stored != b"STORED\r\n":
            return False
        got = text_exchange(address, b"get bench:ready\r\n", b"END\r\n")
        return b"\r\nok\r\n" in got
    except OSError:
        return False


def wait_until_ready(address, proc, timeout_s, what):
    """Poll `address` until a set/get round trip works, or fail.

    Fails early if the process exits, so a bad config does not cost the
    whole timeout.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"{what} exited with status {proc.returncode} during start")
        if roundtrip_ok(address):
            return
        time.sleep(0.05)
    raise BenchError(f"{what} did not answer on {address} within {timeout_s:.0f} s")


def wait_for_path(path, proc, timeout_s, what):
    """Wait for a unix socket file to appear (memcached -s creates it on start)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"{what} exited with status {proc.returncode} during start")
        if os.path.exists(path):
            return
        time.sleep(0.05)
    raise BenchError(f"{what} did not create {path} within {timeout_s:.0f} s")


def flush(address):
    """Empty a memcached so every run starts from the same (empty) state."""
    reply = text_exchange(address, b"flush_all\r\n", b"\r\n")
    if reply != b"OK\r\n":
        raise BenchError(f"flush_all on {address} answered {reply!r}")


def server_stats(address, group=b""):
    """`stats` of a memcached (or of rend) as {name: str}."""
    request = b"stats " + group + b"\r\n" if group else b"stats\r\n"
    try:
        reply = text_exchange(address, request, b"END\r\n", timeout=5.0)
    except OSError as e:
        raise BenchError(f"stats on {address} failed: {e}") from None
    out = {}
    for line in reply.decode(errors="replace").splitlines():
        parts = line.split(" ", 2)
        if len(parts) == 3 and parts[0] == "STAT":
            out[parts[1]] = parts[2]
    if not out:
        raise BenchError(f"stats on {address} answered {reply[:200]!r}")
    return out


def stats_delta(before, after, names):
    """after - before for the numeric stats in `names` (missing ones are absent)."""
    out = {}
    for n in names:
        try:
            out[n] = int(after[n]) - int(before[n])
        except (KeyError, ValueError):
            pass
    return out


# --------------------------------------------------------------------------
# starting and stopping processes

class Processes:
    """Every long-running process the benchmark starts.

    Each one gets its own session (start_new_session) so that it, and any
    children it forks (rend's workers), form one process group we can kill
    as a unit. Pids are also appended to `pid_file` so that run.sh can kill
    leftovers even if this Python process itself is killed with SIGKILL.
    """

    def __init__(self, pid_file):
        self.pid_file = pid_file
        self.procs = []  # (name, Popen), in start order

    def start(self, name, argv, log_path, cwd=None):
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, cwd=cwd,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append((name, proc))
        with open(self.pid_file, "a") as f:
            f.write(f"{proc.pid}\n")
        return proc

    def stop_all(self, grace_s=10.0):
        """SIGTERM everything (newest first: proxies before their memcached),
        then SIGKILL the process group of whatever is still alive."""
        self.stop([p for _, p in self.procs], grace_s)

    def stop(self, procs, grace_s=10.0):
        """Stop some of our processes (the same way as stop_all) and forget them."""
        chosen = [(n, p) for n, p in self.procs if any(p is q for q in procs)]
        for _, proc in reversed(chosen):
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for _, proc in reversed(chosen):
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            # Kill the group even after a clean exit: it catches a worker
            # that outlived its supervisor.
            _signal_group(proc, signal.SIGKILL)
            try:
                proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                pass
        self.procs = [(n, p) for n, p in self.procs if not any(p is q for _, q in chosen)]


def _signal_group(proc, sig):
    try:
        os.killpg(proc.pid, sig)  # pgid == pid because of start_new_session
    except (ProcessLookupError, PermissionError):
        pass


def run_client(argv, timeout_s, out_path):
    """Run a client to completion with a hard timeout.

    Returns (exit status, output text, CPU seconds used by the client).
    os.wait4 gives the client's own rusage exactly, without counting any
    other child of this process.
    """
    with open(out_path, "wb") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid == proc.pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                os.wait4(proc.pid, 0)
                raise BenchError(f"{os.path.basename(argv[0])} did not finish within {timeout_s:.0f} s")
            time.sleep(0.02)
    except BaseException:
        # Ctrl-C or the timeout above: never leave the client running.
        if proc.returncode is None:
            try:
                proc.kill()
                os.wait4(proc.pid, 0)
            except ChildProcessError:
                pass
        raise
    proc.returncode = os.waitstatus_to_exitcode(status)
    with open(out_path, "r", errors="replace") as f:
        text = f.read()
    return proc.returncode, text, usage.ru_utime + usage.ru_stime


# --------------------------------------------------------------------------
# CPU accounting from /proc

def _stat_fields(pid):
    """Fields of /proc/<pid>/stat after the command name.

    The command name is in parentheses and may contain spaces, so split
    after the last ')'. In the returned list, index i is stat field i+3.
    """
    with open(f"/proc/{pid}/stat") as f:
        data = f.read()
    return data[data.rindex(")") + 2:].split()


def _comm(pid):
    with open(f"/proc/{pid}/comm") as f:
        return f.read().strip()


def descendants(root):
    """Pids of all processes below `root` (children, grandchildren, ...)."""
    children = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            ppid = int(_stat_fields(int(name))[1])  # field 4
        except (OSError, ValueError):
            continue  # exited while we looked
        children.setdefault(ppid, []).append(int(name))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def cpu_snapshot(pids):
    """{pid: (start time, utime+stime in ticks)} for the given pids.

    The start time (field 22) identifies the process: a pid reused by a
    restarted worker is then seen as a different process.
    """
    snap = {}
    for pid in pids:
        try:
            f = _stat_fields(pid)
        except OSError:
            raise BenchError(f"process {pid} vanished while reading its CPU time") from None
        utime, stime, start = int(f[11]), int(f[12]), int(f[19])  # fields 14, 15, 22
        snap[pid] = (start, utime + stime)
    return snap


def tree_pids(root, exclude_comm=("memcached",)):
    """`root` and its descendants, minus memcached (if a proxy supervises
    its own memcached, that CPU belongs to the backend, not the proxy)."""
    pids = [root]
    for pid in descendants(root):
        try:
            if _comm(pid) not in exclude_comm:
                pids.append(pid)
        except OSError:
            pass  # exited while we looked; the snapshot comparison will notice
    return pids


def system_busy_seconds():
    """CPU seconds all CPUs spent not idle since boot (/proc/stat "cpu" line).

    Compared with what our own processes used, it shows how much of the
    machine something else took during a run (a compile in another shell
    would otherwise silently skew the numbers).
    """
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def cpu_seconds_between(before, after, what):
    """CPU seconds used between two snapshots of the same set of processes.

    A process that appeared or vanished (a crashed and restarted worker)
    would make the number wrong, so that is an error, not a footnote.
    """
    if set(before) != set(after) or any(before[p][0] != after[p][0] for p in before):
        raise BenchError(f"{what}: process set changed during the run "
                         f"(before {sorted(before)}, after {sorted(after)}); a process restarted?")
    ticks = sum(after[p][1] - before[p][1] for p in before)
    return ticks / CLK_TCK


def start_targets(targets, failures, skipped, section=None):
    """Start every target; a target that cannot start is recorded (under `section`'s name when
    a section started it), not fatal. Returns the ones running."""
    running = []
    for t in targets:
        where = f"{section} section, {t.name}: " if section else ""
        try:
            t.start()
            t.remember_pids()
            log(f"started {t.name} on {t.address}")
            running.append(t)
        except Skip as e:
            log(f"skipped {t.name}: {e}")
            skipped.append(f"{where}{e}")
            t.skipped = str(e)
        except BenchError as e:
            log(f"FAILED to start {t.name}: {e}")
            failures[f"{section}/{t.key}" if section else t.key] = f"{where}{e}"
    return running
