"""The floor of the L2 paths on this machine: rend l1l2 with memcached standing in for rend-l2.

The aims for the L2 paths (set-only ≥ 0.75× of l1only, the 90/10 mix ≥ 0.95×, L2-hit reads ≥ 0.8×
of rend's all-in-RAM proxying) are ratios of two process chains: client → worker → memcached,
against client → worker → rend-l2 → (and then) memcached. How much of the gap is RocksDB, and how
much is the hop itself (one more process to write to, wake and read back on every L2 request)?
This section measures the hop alone: the same rend l1l2 worker with `l2.supervised` false and
`l2.address` on a memcached (`-t 1`: one event loop, like rend-l2's, the fewest wake-ups per
request) that stores every item in RAM. memcached speaks the binary requests a worker sends for
sets and for the batch port's reads; it is the fastest in-RAM store a worker can reach over the
same socket, so what rend reaches with it is the most any L2 process could give, and rend-l2's
own figures sit beside it.

Three targets, workers=1, each with its own L1 memcached (-m 1024 -t 4): rend l1only, rend
l1l2 (rend-l2, WAL on), rend l1l2 with memcached as L2. Per round (adjacent runs of the three
targets, BENCH_REPS rounds, medians):
  - set-only: 10,000 keys of 32 bytes, 100-byte values;
  - the 90/10 mix over the same keys, after a fill (not measured);
  - L1-miss reads: args.ext_keys keys of args.ext_value bytes (the extstore section's working
    set, 16-byte keys), filled once: through the batch port for the two L2 targets (which does
    not copy into L1, so every read misses L1 and is served from L2 without a backfill), through
    the main port for l1only (every read an L1 hit: rend's all-in-RAM proxying); each measured
    read run follows an unmeasured one of WARM_S seconds (a warm block cache in rend-l2).
CPU per request: the client's own figure, rend (supervisor + worker), L1 memcached and the L2
process, utime+stime over the run ÷ its requests.
"""

import os
import statistics

import loadgen
import sections
from measure import once_quiet, record_run
from procs import BenchError, log, start_targets, wait_for_path, wait_until_ready
from targets import START_TIMEOUT_S, Rend, memcached_argv

SECONDS = 8
WARM_S = 4  # an unmeasured read run before each measured one
WRITE_KEYS = 10000
WRITE_OPTS = ("--key-length", "32", "--value-size", "100", "--key-space", WRITE_KEYS)
WORKLOADS = ("set", "mix", "read")
TARGETS = ("floor-l1only", "floor-rend-l2", "floor-memcached-l2")
LABELS = {"floor-l1only": "rend l1only", "floor-rend-l2": "rend l1l2, rend-l2",
          "floor-memcached-l2": "rend l1l2, memcached as L2"}


class RendWithMemcachedL2(Rend):
    """rend l1l2 (workers=1) whose L2 is a memcached on a unix socket (not supervised)."""

    def __init__(self, workdir, procs, build_dir):
        super().__init__(workdir, procs, build_dir, workers=1, l2=True, key="floor-memcached-l2",
                         name="rend l1l2, workers=1, L2 = memcached -m 1024 -t 1 (the hop's floor)")
        self.stand_in = None

    def start(self):
        sock = os.path.join(self.dir, "l2-memcached.sock")
        argv = memcached_argv(["-s", sock], extra=("-t", "1"))
        argv[argv.index("-t") + 1] = "1"  # memcached_argv's -t 4; one event loop here
        self.stand_in = self.procs.start(f"{self.key}-l2-memcached", argv,
                                         os.path.join(self.dir, "l2-memcached.log"))
        self.commands.append(" ".join(argv))
        wait_for_path(sock, self.stand_in, START_TIMEOUT_S, f"{self.name}: L2 memcached")
        wait_until_ready(sock, self.stand_in, START_TIMEOUT_S, f"{self.name}: L2 memcached")
        self.l2_settings = {"supervised": False, "address": sock}
        super().start()

    def l2_pids(self):
        return [self.stand_in.pid] if self.stand_in is not None else []

    def processes(self):
        return super().processes() + ([self.stand_in] if self.stand_in is not None else [])

    def _check_worker_count(self):
        found = len(self.proxy_pids()) - 1
        if found != self.workers:
            raise BenchError(f"{self.name}: expected {self.workers} rend-worker processes, found {found}")


def make_targets(workdir, procs, build_dir):
    return [Rend(workdir, procs, build_dir, workers=1, key="floor-l1only", name="rend l1only, workers=1"),
            Rend(workdir, procs, build_dir, workers=1, l2=True, key="floor-rend-l2",
                 name="rend l1l2, workers=1, rend-l2 (RocksDB, WAL on)"),
            RendWithMemcachedL2(workdir, procs, build_dir)]


def _read_address(t):
    return t.address if t.key == "floor-l1only" else t.batch_address


def _argv(lg, t, workload, args, seconds=SECONDS):
    if workload == "read":
        return loadgen.argv(lg, _read_address(t), "-w", "mix", "--get-ratio", "1.0", "--no-preload",
                            "--key-space", args.ext_keys, "--value-size", args.ext_value, "-d", seconds)
    ratio = "0.0" if workload == "set" else "0.9"
    return loadgen.argv(lg, t.address, "-w", "mix", "--get-ratio", ratio, "--no-preload", *WRITE_OPTS,
                        "-d", SECONDS)


def _fill_reads(t, lg, args):
    cmd = loadgen.argv(lg, _read_address(t), "-w", "fill", "--key-space", args.ext_keys,
                       "--value-size", args.ext_value)
    r = loadgen.run(t, cmd, 900, os.path.join(t.dir, "floor-fill.out"))
    log(f"{t.name}: {args.ext_keys} x {args.ext_value} B filled at {r['ops_per_s']:,.0f} sets/s")
    return loadgen.shown(cmd)


def _describe(label):
    def line(r):
        return (f"{label:52s} {r['ops_per_s']:>9,.0f} ops/s  client {r['loadgen_us']:5.1f}  rend "
                f"{r['proxy_us']:5.1f}  L1 {r['memcached_us']:5.1f}  L2 {r['l2_us']:5.1f} us/req  "
                f"other {r['other_cores']:.2f} cores")
    return line


def _one_run(t, lg, workload, args, rep):
    cmd = _argv(lg, t, workload, args)

    def one():
        if workload == "mix":  # the gets read what a fill (not measured) wrote
            fill = loadgen.argv(lg, t.address, "-w", "fill", *WRITE_OPTS)
            loadgen.run(t, fill, 300, os.path.join(t.dir, f"floor-mixfill{rep}.out"))
        if workload == "read":
            # Not measured: rend-l2's block cache starts cold after the fill and after merges of
            # the writes since, and the first reads would pay for filling it.
            warm = _argv(lg, t, workload, args, WARM_S)
            loadgen.run(t, warm, WARM_S + 120, os.path.join(t.dir, f"floor-readwarm{rep}.out"))
        r = loadgen.run(t, cmd, SECONDS + 120, os.path.join(t.dir, f"floor-{workload}{rep}.out"))
        r["rep"] = rep
        r["total_us"] = r["proxy_us"] + r["memcached_us"] + r["l2_us"]
        return r
    return one, loadgen.shown(cmd)


def measure(workdir, procs, build_dir, args, lg, failures, skipped):
    """Returns {"runs": {(target key, workload): [run]}, "medians", "commands"}."""
    targets = start_targets(make_targets(workdir, procs, build_dir), failures, skipped, section="floor")
    runs = {(t.key, w): [] for t in targets for w in WORKLOADS}
    commands = {}
    try:
        for t in targets:
            once_quiet(args)
            commands[f"fill-{t.key}"] = _fill_reads(t, lg, args)
        for rep in range(1, args.reps + 1):
            order = targets if rep % 2 else list(reversed(targets))
            for workload in WORKLOADS:
                for t in order:
                    fkey = f"floor/{t.key}/{workload}"
                    if fkey in failures:
                        continue
                    one, commands[f"{workload}-{t.key}"] = _one_run(t, lg, workload, args, rep)
                    record_run(runs[(t.key, workload)], one, args, _describe(f"{workload} {LABELS[t.key]} run {rep}"),
                               failures, fkey, f"floor section, {workload}, {t.name}, run {rep}")
    except BenchError as e:
        log(f"FAILED the floor section: {e}")
        failures["floor"] = f"floor section: {e}"
    finally:
        procs.stop([p for t in targets for p in t.processes()])
    medians = {}
    for k, v in runs.items():
        if v:
            medians[k] = sections.median_of(v)
            medians[k]["total_us"] = statistics.median(r["total_us"] for r in v)
    return {"runs": runs, "medians": medians, "commands": commands}


def same_round_ratio(result, key, workload, metric="ops_per_s"):
    """`key` ÷ l1only of `metric` per round (the runs of a round are adjacent): median, min, max."""
    base = {r["rep"]: r for r in result["runs"].get(("floor-l1only", workload), [])}
    mine = {r["rep"]: r for r in result["runs"].get((key, workload), [])}
    ratios = [mine[rep][metric] / base[rep][metric] for rep in sorted(base) if rep in mine and base[rep][metric]]
    if not ratios:
        return None
    return statistics.median(ratios), min(ratios), max(ratios)


WORKLOAD_NAMES = {
    "set": "set-only",
    "mix": "90/10 mix",
    "read": "reads: L1 misses served by L2 (batch port) vs l1only's L1 hits",
}


def table(result):
    rows = ["| workload | target | ops/s | same-round ÷ l1only | client CPU µs/req | rend CPU µs/req "
            "| L1 memcached µs/req | L2 process µs/req | rend + L1 + L2 µs/req |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    meds = result["medians"]
    for workload in WORKLOADS:
        for key in TARGETS:
            m = meds.get((key, workload))
            if m is None:
                rows.append(f"| {WORKLOAD_NAMES[workload]} | {LABELS[key]} | FAILED | | | | | | |")
                continue
            ratio = same_round_ratio(result, key, workload) if key != "floor-l1only" else None
            shown = f"{ratio[0]:.2f}× ({ratio[1]:.2f}–{ratio[2]:.2f})" if ratio else "1.00×"
            l2 = f"{m['l2_us']:.1f}" if key != "floor-l1only" else "–"
            rows.append(f"| {WORKLOAD_NAMES[workload]} | {LABELS[key]} | {m['ops_per_s']:,.0f} | {shown} "
                        f"| {m['loadgen_us']:.1f} | {m['proxy_us']:.1f} | {m['memcached_us']:.1f} | {l2} "
                        f"| {m['total_us']:.1f} |")
    return "\n".join(rows)


def render(result, args):
    head = "## The L2 hop's floor: rend l1l2 with memcached standing in for rend-l2"
    if not result or not result["medians"]:
        return head + "\n\nNot measured (see Skipped / failed).\n"
    c = result["commands"]
    return f"""{head}

How measured: rend l1only, rend l1l2 (rend-l2, WAL on) and rend l1l2 whose L2 is a memcached
(-m 1024 -t 1, `l2.supervised` false): the same worker, the same hop, a store that costs what
memcached costs. Workers=1, each target its own L1 memcached -m 1024 -t 4. Per round, the three
targets adjacent ({args.reps} rounds, order alternating, medians): set-only
`{c.get('set-floor-rend-l2')}`; the mix `{c.get('mix-floor-rend-l2')}` after a fill (not
measured); reads of {args.ext_keys:,} keys x {args.ext_value} B filled once, through the batch port
for the L2 targets (no copy into L1: every read an L1 miss and an L2 hit, no backfill) and the main
port for l1only (every read an L1 hit): `{c.get('read-floor-rend-l2')}`, each after an
unmeasured {WARM_S} s run of the same. Same-round ratio: the
target's ops/s ÷ l1only's in the same round, median (range). CPU: utime+stime over the run ÷ its
requests; the client's is its own report.

What the memcached row shows is the most any L2 process reached over this hop could give on this
machine: where it is below an aim, the aim is out of reach for a proxy that keeps L2 in a process
of its own, whatever that process does.

{table(result)}
"""
