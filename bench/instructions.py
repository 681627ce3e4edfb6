"""The metrics cost as instructions per request, counted by callgrind.

The wall-clock A/B of rend-w1 vs rend-w1-nometrics swings by more than the
3% it is meant to resolve on a shared VM (and there are no hardware perf
counters here), so this part counts instead: two rend l1only workers=1,
`metrics.enabled` true and false, each started under
`valgrind --tool=callgrind --trace-children=yes` (valgrind's own way into a
child: rend fork+execs its worker, and the worker is traced too). The same
rend-loadgen request stream (the memcaslap profile: 90% get / 10% set,
32-byte keys, 100-byte values, 32 connections) is sent to each, and
`callgrind_control` zeroes the worker's counters before a window of N
requests and dumps them after it. Instructions per request =
(Ir(N_long) - Ir(N_short)) / (N_long - N_short): whatever a window costs
regardless of its length (32 connects and closes, the dump itself) cancels
out. Each round starts a fresh instance of each (one at a time, alternating
which goes first) and gives one estimate per instance; the report shows
their median and range.

What this does and does not count: user-space instructions of the worker
only (no kernel time, which is most of a proxy's CPU: every request is two
socket reads and two writes). valgrind hides the vDSO, so clock_gettime is a
real syscall under it and counts as ~10 instructions, while natively it is a
vDSO call of some tens of instructions: the report gives the clock reads per
request too, so that part can be judged separately.

Like the other sections: failures go to `failures`, what cannot run to
`skipped`; nothing here raises BenchError.
"""

import os
import re
import shutil
import statistics
import subprocess
import time

import loadgen
from procs import CLK_TCK, BenchError, Skip, descendants, log, run_client
from targets import Rend

# The memcaslap profile (bench.LOAD_CFG) spelled for rend-loadgen; `mix` with
# --no-preload after a separate fill, so the measured windows are pure mix.
KEY_SPACE = 10000
PROFILE = ("--get-ratio", "0.9", "--key-length", "32", "--value-size", "100",
           "--key-space", KEY_SPACE)
WARMUP_REQUESTS = 5000          # per instance, after the fill, not measured
SETTLE_S = 0.5                  # after a window: let the worker finish the 32 closes before the dump
CONTROL_TIMEOUT_S = 60
CLOCK_FUNCTION = "clock_gettime"


def valgrind_argv(out_dir):
    return ["valgrind", "--tool=callgrind", "--trace-children=yes",
            f"--callgrind-out-file={os.path.join(out_dir, 'callgrind.%p')}"]


def _control(option, pid):
    """callgrind_control -z / -d on one process (it reaches a worker blocked
    in epoll_wait through vgdb, which may need ptrace)."""
    try:
        out = subprocess.run(["callgrind_control", option, str(pid)], capture_output=True,
                             text=True, timeout=CONTROL_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise BenchError(f"callgrind_control {option} {pid} did not answer within "
                         f"{CONTROL_TIMEOUT_S} s") from None
    text = out.stdout + out.stderr
    if out.returncode != 0 or "OK." not in text:
        raise BenchError(f"callgrind_control {option} {pid} failed (exit {out.returncode}): "
                         + text.strip()[-300:])


def _latest_dump(out_dir, pid):
    """The newest numbered dump of `pid` (callgrind.<pid>.<n>)."""
    best, best_n = None, 0
    prefix = f"callgrind.{pid}."
    for name in os.listdir(out_dir):
        if name.startswith(prefix) and name[len(prefix):].isdigit() and int(name[len(prefix):]) > best_n:
            best, best_n = os.path.join(out_dir, name), int(name[len(prefix):])
    return best, best_n


def parse_dump(path):
    """Total instructions (the `summary:` line, what callgrind_annotate calls
    PROGRAM TOTALS) and the number of calls to clock_gettime in one dump."""
    ir, clock_calls = None, 0
    names, callee = {}, None
    name_re = re.compile(r"c?fn=\((\d+)\)(?: (.*))?")
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith("summary:"):
                ir = int(line.split()[1])
            elif line.startswith(("fn=", "cfn=")):
                m = name_re.match(line.rstrip("\n"))
                if m:
                    if m.group(2):
                        names[m.group(1)] = m.group(2)
                    if line.startswith("cfn="):
                        callee = names.get(m.group(1), "")
            elif line.startswith("calls="):
                if callee and callee.startswith(CLOCK_FUNCTION):
                    clock_calls += int(line.split()[0][len("calls="):])
                callee = None
    if ir is None:
        raise BenchError(f"{path}: no summary line (not a callgrind dump?)")
    return ir, clock_calls


def self_costs(path):
    """{function: instructions spent in it (not its callees)} from callgrind_annotate."""
    try:
        out = subprocess.run(["callgrind_annotate", "--threshold=100", "--inclusive=no",
                              "--auto=no", path], capture_output=True, text=True, timeout=120).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    costs, started = {}, False
    for line in out.splitlines():
        if "file:function" in line:
            started = True
            continue
        m = re.match(r"\s*([\d,]+) \(\s*[\d.]+%\)\s+(.*)", line) if started else None
        if m:
            name = _short_function(m.group(2))
            costs[name] = costs.get(name, 0) + int(m.group(1).replace(",", ""))
    return costs


def _short_function(entry):
    """'file:function(args) [object]' -> 'function (file basename)', readable in a table."""
    entry = re.sub(r" \[[^\]]*\]$", "", entry)
    file, _, fn = entry.partition(":")
    if not fn:
        return entry
    depth, cut = 0, len(fn)
    for i, ch in enumerate(fn):  # drop the argument list (the outermost parentheses)
        if ch == "(" and depth == 0 and i > 0 and not fn.startswith("(below"):
            cut = i
            break
    fn = fn[:cut]
    return f"{fn} ({os.path.basename(file)})"


def worker_cpu_split(target):
    """User and system CPU seconds of a (native) rend target's workers since they started,
    /proc/PID/stat fields 14 and 15: how much of a worker's CPU the instruction count can see."""
    user = system = 0
    try:
        for pid in descendants(target.proxy.pid):
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            user, system = user + int(fields[11]), system + int(fields[12])
    except (OSError, IndexError, ValueError):
        return None
    return {"user_s": user / CLK_TCK, "system_s": system / CLK_TCK} if user + system else None


class Instance:
    """One rend under callgrind, its worker's pid and its dumps."""

    def __init__(self, target, out_dir):
        self.target, self.out_dir = target, out_dir
        self.worker_pid = None

    def find_worker(self):
        kids = descendants(self.target.proxy.pid)
        if len(kids) != 1:
            raise BenchError(f"{self.target.name}: expected one rend-worker under the supervisor, "
                             f"found pids {kids}")
        self.worker_pid = kids[0]

    def window(self, lg, requests, label):
        """Zero the worker's counters, send exactly `requests`, dump; returns
        {ir, clock_calls, dump, wall_s, ops_per_s}."""
        t = self.target
        t.check_alive()
        _, before_n = _latest_dump(self.out_dir, self.worker_pid)
        _control("-z", self.worker_pid)
        cmd = loadgen.argv(lg, t.address, "-w", "mix", "--no-preload", *PROFILE, "-n", requests)
        start = time.monotonic()
        rc, text, _ = run_client(cmd, 900, os.path.join(t.dir, f"{label}.out"))
        wall = time.monotonic() - start
        report = loadgen.parse(text)
        r = loadgen.phase_numbers(report)
        if rc != 0 or not report.get("ok", False) or r["errors"]:
            why = report.get("fatal") or "; ".join(r["error_samples"][:3]) or f"{r['errors']} errors"
            raise BenchError(f"rend-loadgen failed (exit {rc}): {why}")
        if r["requests"] != requests:
            raise BenchError(f"rend-loadgen sent {r['requests']} requests, expected {requests}")
        time.sleep(SETTLE_S)
        _control("-d", self.worker_pid)
        dump, n = _latest_dump(self.out_dir, self.worker_pid)
        if dump is None or n <= before_n:
            raise BenchError(f"callgrind wrote no new dump for pid {self.worker_pid} in {self.out_dir}")
        ir, clocks = parse_dump(dump)
        t.check_alive()
        return {"ir": ir, "clock_calls": clocks, "dump": dump, "wall_s": wall,
                "ops_per_s": r["ops_per_s"], "hits": r["hits"], "gets": r["gets"]}


def _start_instance(workdir, procs, build_dir, metrics, rnd):
    base = "rend-w1-callgrind" if metrics else "rend-w1-nometrics-callgrind"
    key = f"{base}-r{rnd}"
    name = f"rend l1only, workers=1, metrics.enabled={'true' if metrics else 'false'}, under callgrind"
    out_dir = os.path.join(workdir, key, "callgrind")
    os.makedirs(out_dir, exist_ok=True)
    t = Rend(workdir, procs, build_dir, workers=1, metrics=metrics, key=key, name=name,
             wrapper=valgrind_argv(out_dir), start_timeout_s=120)
    inst = Instance(t, out_dir)
    try:
        t.start()
        t.remember_pids()
        inst.find_worker()
    except BaseException:
        procs.stop(t.processes())
        raise
    log(f"started {t.name} (round {rnd}) on {t.address}, worker pid {inst.worker_pid}")
    return inst


def _fill(inst, lg):
    """The same keys in every instance, so gets hit (not measured)."""
    t = inst.target
    fill = loadgen.argv(lg, t.address, "-w", "fill", "--key-space", KEY_SPACE,
                        "--key-length", "32", "--value-size", "100")
    rc, text, _ = run_client(fill, 900, os.path.join(t.dir, "fill.out"))
    report = loadgen.parse(text)
    if rc != 0 or not report.get("ok", False):
        raise BenchError(f"{t.name}: fill failed (exit {rc}): {report.get('fatal') or text.strip()[-300:]}")
    return loadgen.shown(fill)


def metrics_instructions(workdir, procs, build_dir, args, lg, failures, skipped):
    """Instructions per request of rend-worker with metrics on and off.

    Every round starts a fresh pair of instances (one at a time, the order
    alternating between rounds): how the heap happens to be laid out shifts
    malloc's cost by a few tens of instructions per request from one
    process to the next, and fresh processes let the range over rounds show
    that instead of repeating one instance's luck."""
    missing = [tool for tool in ("valgrind", "callgrind_control", "callgrind_annotate")
               if shutil.which(tool) is None]
    if missing:
        skipped.append(f"metrics cost in instructions (section metrics-ir): {', '.join(missing)} not "
                       "installed (Debian package valgrind; `scripts/install-deps.sh --bench` installs it)")
        return None
    n_long = args.ir_ops
    n_short = max(n_long // 4, 1)
    out = {"n_short": n_short, "n_long": n_long, "rounds": [], "command": None, "fill": None}
    try:
        for rnd in range(1, args.ir_rounds + 1):
            result = {"round": rnd}
            for metrics in ([True, False] if rnd % 2 else [False, True]):
                inst = _start_instance(workdir, procs, build_dir, metrics, rnd)
                try:
                    out["fill"] = _fill(inst, lg)
                    inst.window(lg, WARMUP_REQUESTS, "ir-warmup")
                    out["command"] = loadgen.shown(loadgen.argv(lg, inst.target.address, "-w", "mix",
                                                                "--no-preload", *PROFILE, "-n", "<N>"))
                    short = inst.window(lg, n_short, "ir-short")
                    long = inst.window(lg, n_long, "ir-long")
                finally:
                    procs.stop(inst.target.processes())
                per_req = (long["ir"] - short["ir"]) / (n_long - n_short)
                clocks = (long["clock_calls"] - short["clock_calls"]) / (n_long - n_short)
                result["on" if metrics else "off"] = {
                    "ir_per_request": per_req, "clocks_per_request": clocks,
                    "short": short, "long": long}
                log(f"callgrind round {rnd}, metrics {'on ' if metrics else 'off'}: "
                    f"{per_req:,.0f} instructions/request, {clocks:.2f} clock reads/request "
                    f"({n_short} requests: {short['ir']:,} Ir, {n_long}: {long['ir']:,} Ir; "
                    f"{long['ops_per_s']:,.0f} requests/s under callgrind)")
            result["pct"] = (result["on"]["ir_per_request"] / result["off"]["ir_per_request"] - 1) * 100
            out["rounds"].append(result)
        out["where"] = _where(out["rounds"][-1], n_long - n_short)
    except Skip as e:
        log(f"skipped the callgrind section: {e}")
        skipped.append(f"metrics cost in instructions: {e}")
        return None
    except BenchError as e:
        log(f"FAILED the callgrind section: {e}")
        failures["metrics-ir"] = f"metrics cost in instructions (callgrind): {e}"
    if out["rounds"]:
        on = [r["on"]["ir_per_request"] for r in out["rounds"]]
        off = [r["off"]["ir_per_request"] for r in out["rounds"]]
        pct = [r["pct"] for r in out["rounds"]]
        out["summary"] = {
            "on": statistics.median(on), "off": statistics.median(off),
            "on_range": (min(on), max(on)), "off_range": (min(off), max(off)),
            "pct": statistics.median(pct), "pct_range": (min(pct), max(pct)),
            "clocks_on": statistics.median(r["on"]["clocks_per_request"] for r in out["rounds"]),
            "clocks_off": statistics.median(r["off"]["clocks_per_request"] for r in out["rounds"]),
        }
    return out


def _where(rnd, n):
    """Per function, instructions per request with metrics on minus off (last round):
    each side's (long - short) window difference, so fixed costs cancel here too."""
    def per_request(side):
        a, b = self_costs(rnd[side]["long"]["dump"]), self_costs(rnd[side]["short"]["dump"])
        return {k: (a.get(k, 0) - b.get(k, 0)) / n for k in set(a) | set(b)}
    on, off = per_request("on"), per_request("off")
    # Leave out the frames that were on the stack when the counters were zeroed ((below main),
    # main, Worker::run, ...): in a dump taken mid-run callgrind_annotate shows each of them with
    # the whole window's cost as its own.
    total_on = max(on.values(), default=0)
    rows = [(k, on.get(k, 0) - off.get(k, 0), on.get(k, 0), off.get(k, 0))
            for k in set(on) | set(off) if on.get(k, 0) < 0.99 * total_on]
    rows.sort(key=lambda r: -abs(r[1]))
    return rows[:8]
