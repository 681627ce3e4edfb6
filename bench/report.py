"""Markdown report for bench.py: machine description, the summary table,
every raw run, and how to reproduce."""

import os
import platform
import re
import statistics
import shutil
import subprocess
import time

import admission
import chunked
import floor
import instructions
import meta
from targets import BASELINE_KEYS, DEFAULT_MEMORY_MB, EXTSTORE_TUNED_FILL_RATE, EXTSTORE_TUNING

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cmd_output(argv):
    """First line of a command's output, or a note why there is none."""
    if shutil.which(argv[0]) is None:
        return "not installed"
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"unavailable ({e})"
    lines = (out.stdout + out.stderr).strip().splitlines()
    return lines[0] if lines else "?"


def _cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown"


def _build_type(build_dir):
    try:
        with open(os.path.join(build_dir, "CMakeCache.txt")) as f:
            for line in f:
                if line.startswith("CMAKE_BUILD_TYPE:"):
                    return line.split("=", 1)[1].strip() or "(empty)"
    except OSError:
        pass
    return "unknown"


def _rend_revision():
    """Read-only git queries: which rend was measured, and was the tree dirty."""
    rev = _cmd_output(["git", "-C", REPO, "rev-parse", "--short", "HEAD"])
    try:
        dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        dirty = ""
    return rev + (" (with uncommitted changes)" if dirty else "")


def environment(build_dir):
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": _cpu_model(),
        "kernel": platform.release(),
        "load": load,
        "memcached": _cmd_output(["memcached", "-V"]),
        "nutcracker": _cmd_output(["nutcracker", "-V"]),
        "memcaslap": _cmd_output(["memcaslap", "-V"]),
        "rend": _rend_revision(),
        "build_type": _build_type(build_dir),
    }


def _fmt_ratio(x):
    return f"{x:.2f}×"


def table(targets, summaries, failures):
    """The summary table: medians, each row relative to direct memcached."""
    base = summaries.get("memcached")
    rows = [
        "| target | ops/s | ops/s vs direct memcached | proxy CPU µs/request "
        "| proxy CPU vs memcached's own CPU/request | backend memcached CPU µs/request "
        "| memcaslap CPU µs/request |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for t in targets:
        if t.key in failures:
            rows.append(f"| {t.name} | FAILED: {failures[t.key]} | | | | | |")
            continue
        s = summaries.get(t.key)
        if s is None:
            continue
        vs_ops = _fmt_ratio(s["ops_per_s"] / base["ops_per_s"]) if base else "n/a"
        vs_cpu = _fmt_ratio(s["proxy_us"] / base["proxy_us"]) if base else "n/a"
        proxy = f"{s['proxy_us']:.2f}"
        if t.proxy is None:
            proxy += " (memcached itself)"
        rows.append(f"| {t.name} | {s['ops_per_s']:,.0f} | {vs_ops} | {proxy} | {vs_cpu} "
                    f"| {s['memcached_us']:.2f} | {s['client_us']:.2f} |")
    return "\n".join(rows)


def _raw_runs(targets, runs):
    rows = ["| target | run | ops/s | wall s | proxy µs/req | memcached µs/req | rend-l2 µs/req "
            "| memcaslap µs/req | get misses | other CPU (cores) | attempts |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for t in targets:
        for r in runs.get(t.key, []):
            l2 = f"{r['l2_us']:.2f}" if getattr(t, "l2", False) else "–"
            rows.append(f"| {t.name} | {r['rep']} | {r['ops_per_s']:,} | {r['wall_s']:.1f} "
                        f"| {r['proxy_us']:.2f} | {r['memcached_us']:.2f} | {l2} | {r['client_us']:.2f} "
                        f"| {r['get_misses']} | {r['other_cores']:.2f} | {r['attempts']} |")
    return "\n".join(rows)


def _noise_note(runs, noisy_cores, extra=None):
    others = [r["other_cores"] for rs in runs.values() for r in rs]
    others += [r["other_cores"] for r in _loadgen_runs(extra or {})]
    worst = max(others, default=0.0)
    verdict = ("quiet enough" if worst <= noisy_cores
               else f"**noisy: above {noisy_cores} cores, treat the numbers with care**")
    return (f"Other CPU use during the runs (whole machine minus the target's processes and "
            f"the load generator, includes some softirq work for our own traffic): at most "
            f"{worst:.2f} cores — {verdict}.")


def render(env, targets, summaries, runs, failures, skipped, command, load_cfg, args,
           warmup_ops, noisy_cores, extra=None):
    extra = extra or {}
    keys = {t.key for t in targets}
    notes = list(skipped) + [f"{t.name}: failed ({failures[t.key]})" for t in targets
                             if t.key in failures]
    notes += [f"FAILED: {v}" for k, v in failures.items() if k not in keys]
    baseline = [t for t in targets if t.key in BASELINE_KEYS]
    ext_targets = extra.get("extstore", {}).get("targets", [])
    servers = "\n".join(f"- {t.name}: `{c}`" for t in list(targets) + list(ext_targets)
                        for c in t.commands)
    return f"""# rend benchmark — {env['date']}

## Machine

- nproc: {env['nproc']}; CPU: {env['cpu']}; kernel {env['kernel']}
- load average at start: {env['load']}
- memcached: {env['memcached']}; nutcracker: {env['nutcracker']}; memcaslap: {env['memcaslap']}
- rend: git {env['rend']}, CMake build type {env['build_type']}

## Load

Same for every target of the results table and of the metrics-cost and L2
L1-hit sections, {args.reps} measured runs each (rend l1only workers=1 with
metrics on and off: {args.metrics_reps}; interleaved rounds, after one
{warmup_ops}-op warm-up run per target), median reported:

```
{command}
```

memcaslap.cfg (32-byte keys, 100-byte values, 10% set / 90% get):

```
{load_cfg.rstrip()}
```

memcaslap only gets keys it has set earlier in the same run, so no preload is
needed; the get-miss count of every run is in the raw table below. Each
target's memcached is flushed before each run.

## Results (medians)

{table(baseline, summaries, failures)}

- *proxy CPU*: utime+stime (/proc/PID/stat fields 14+15) of all the proxy's
  processes, read right before and after the run, divided by the ops. rend =
  supervisor + every rend-worker; nutcracker = its one process; direct row =
  memcached itself. Never includes memcached for the proxy rows.
- *proxy CPU vs memcached's own*: proxy CPU per request ÷ the direct
  memcached's CPU per request (how expensive the proxy is, in memcacheds).
- *backend memcached*: CPU per request of the memcached behind that target.
- *memcaslap*: the load generator's own CPU per request (from wait4 rusage).

Skipped / failed: {"; ".join(notes) if notes else "nothing skipped."}

{_noise_note(runs, noisy_cores, extra)}

{_loadgen_section(extra.get("loadgen"), summaries)}

{_metrics_section(targets, summaries, runs, failures, extra)}

{_l2_targets(summaries, extra)}

{_l2_section(targets, summaries, failures, extra.get("l2hit"), extra.get("split"))}

{_extstore_section(extra.get("extstore"), args)}

{floor.render(extra.get("floor"), args) if "floor" in args.sections else ""}

{chunked.render(extra.get("chunked")) if "chunked" in args.sections else ""}

{meta.render(extra.get("meta"), args) if "meta" in args.sections else ""}

{admission.render(extra.get("admission")) if "admission" in args.sections else ""}

{_plot_section(extra.get("plot"))}

## Raw runs (memcaslap)

{_raw_runs(targets, runs)}

## Servers

Each target has its own memcached; the proxies reach it over a unix socket.
rend with L2 starts and supervises its own rend-l2 (RocksDB) in its temp dir.

{servers}

{_loadgen_raw(extra)}

nutcracker conf.yml:

```
{_nutcracker_conf(targets)}
```
"""


def _nutcracker_conf(targets):
    for t in targets:
        path = os.path.join(t.dir, "conf.yml")
        if t.key == "nutcracker" and os.path.exists(path):
            with open(path) as f:
                return f.read().rstrip()
    return "(nutcracker not run)"


def write(results_dir, text, stamp=None):
    """bench/results/<timestamp>.md plus a copy as latest.md."""
    path = os.path.join(results_dir, (stamp or time.strftime("%Y%m%d-%H%M%S")) + ".md")
    with open(path, "w") as f:
        f.write(text)
    shutil.copyfile(path, os.path.join(results_dir, "latest.md"))
    return path


# --------------------------------------------------------------------------
# the sections after the memcaslap table

def _pct(new, old):
    """Relative change new vs old, in percent, signed."""
    return (new / old - 1.0) * 100.0 if old else float("nan")


def _lat(m):
    return f"{m['p50']:.0f} | {m['p90']:.0f} | {m['p99']:.0f} | {m['p99_9']:.0f}"


def _loadgen_runs(extra):
    out = []
    lg = extra.get("loadgen")
    if lg:
        out += [r for rs in lg["runs"].values() for r in rs]
    l2 = extra.get("l2hit")
    if l2:
        out += [r for rs in l2["runs"].values() for r in rs]
    split = extra.get("split")
    if split:
        out += [r for rs in split["runs"].values() for r in rs]
    meta_runs = extra.get("meta")
    if meta_runs:
        out += [r for rs in meta_runs["runs"].values() for r in rs]
    for section in ("admission", "floor"):
        if extra.get(section):
            out += [r for rs in extra[section]["runs"].values() for r in rs]
    return out


def _loadgen_section(lg, summaries):
    head = "## Load generator: rend-loadgen `bench` next to memcaslap"
    if not lg:
        return head + "\n\nNot run (see Skipped / failed above)."
    meds = lg["medians"]
    base = meds.get("memcached")
    rows = [
        "| target | rend-loadgen ops/s | vs direct memcached | memcaslap ops/s (table above) "
        "| p50 µs | p90 µs | p99 µs | p99.9 µs | rend-loadgen CPU µs/request "
        "| memcaslap CPU µs/request | rend-loadgen ÷ memcaslap CPU |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for t in lg["targets"]:
        m = meds.get(t.key)
        if m is None:
            rows.append(f"| {t.name} | FAILED | | | | | | | | | |")
            continue
        s = summaries.get(t.key)
        mc_ops = f"{s['ops_per_s']:,.0f}" if s else "n/a"
        mc_cpu = f"{s['client_us']:.2f}" if s else "n/a"
        ratio = _fmt_ratio(m["loadgen_us"] / s["client_us"]) if s else "n/a"
        vs = _fmt_ratio(m["ops_per_s"] / base["ops_per_s"]) if base else "n/a"
        rows.append(f"| {t.name} | {m['ops_per_s']:,.0f} | {vs} | {mc_ops} | {_lat(m)} "
                    f"| {m['loadgen_us']:.2f} | {mc_cpu} | {ratio} |")
    ratios = [m["loadgen_us"] / summaries[k]["client_us"] for k, m in meds.items() if k in summaries]
    verdict = ""
    if ratios:
        lo, hi = min(ratios), max(ratios)
        verdict = (f"\n\nrend-loadgen's CPU per request is {lo:.2f}–{hi:.2f}× memcaslap's for the same "
                   f"profile: " + ("below memcaslap's for every target."
                                   if hi < 1 else "**not below memcaslap's for every target.**"))
    return f"""{head}

How measured: `{lg['command']}` (its fixed profile: 1 thread, 32 connections, 90% get /
10% set, 100-byte values, 10000 uniform keys preloaded, closed loop, one request in flight per
connection — memcaslap's profile), memcached flushed before each run, in interleaved rounds
after the memcaslap rounds, medians; latency is rend-loadgen's (send to reply, all requests);
its CPU per request is its own getrusage over the measured phase, memcaslap's is from the table
above (wait4 rusage over the same profile).

{chr(10).join(rows)}{verdict}"""


def _metrics_section(targets, summaries, runs, failures, extra):
    head = "## Metrics cost: rend l1only workers=1, `metrics.enabled` true vs false"
    return "\n\n".join([head,
                         _metrics_ir_part(extra.get("metrics_ir"), failures, extra.get("w1_cpu_split")),
                         _metrics_wallclock_part(summaries, runs, failures)])


def _spread(xs):
    """'median (quartiles q1 .. q3, range lo .. hi)' of signed percentages."""
    if not xs:
        return "n/a"
    med = statistics.median(xs)
    if len(xs) < 4:
        return f"{med:+.1f}% (range {min(xs):+.1f}% .. {max(xs):+.1f}%)"
    q1, _, q3 = statistics.quantiles(xs, n=4, method="inclusive")
    return (f"{med:+.1f}% (quartiles {q1:+.1f}% .. {q3:+.1f}%, range {min(xs):+.1f}% .. "
            f"{max(xs):+.1f}%)")


def _metrics_ir_part(ir, failures, cpu_split):
    warmup = instructions.WARMUP_REQUESTS
    head = "### (a) Instructions per request (callgrind: repeatable, the figure to judge by)"
    if not ir or not ir.get("summary"):
        why = failures.get("metrics-ir") or "not run (see Skipped / failed above)"
        return f"{head}\n\nNot measured: {why}."
    s, n1, n2 = ir["summary"], ir["n_short"], ir["n_long"]
    rounds = len(ir["rounds"])
    verdict = "within the 3% aim" if s["pct"] < 3 else "**above the 3% aim**"
    rows = ["| metrics.enabled | worker instructions/request (median) | range over rounds "
            "| clock_gettime calls/request |",
            "|---|---:|---:|---:|",
            f"| false | {s['off']:,.0f} | {s['off_range'][0]:,.0f} .. {s['off_range'][1]:,.0f} "
            f"| {s['clocks_off']:.2f} |",
            f"| true (default) | {s['on']:,.0f} | {s['on_range'][0]:,.0f} .. {s['on_range'][1]:,.0f} "
            f"| {s['clocks_on']:.2f} |",
            f"| true vs false (per round, median) | {s['pct']:+.2f}% "
            f"| {s['pct_range'][0]:+.2f}% .. {s['pct_range'][1]:+.2f}% | |"]
    where = ""
    if ir.get("where"):
        wrows = ["| function (file) | on − off | on | off |", "|---|---:|---:|---:|"]
        for name, diff, on, off in ir["where"]:
            wrows.append(f"| `{name}` | {diff:+.1f} | {on:.1f} | {off:.1f} |")
        where = ("\n\nWhere the difference goes (last round; instructions per request spent in each "
                 "function itself, callees excluded; inlined code counts for the function it is "
                 "inlined into, under the file it comes from):\n\n" + "\n".join(wrows))
    user = ""
    if cpu_split:
        share = cpu_split["user_s"] / (cpu_split["user_s"] + cpu_split["system_s"])
        user = (f" Natively, the rend-w1 worker spent {share * 100:.0f}% of its CPU in user space "
                f"during the memcaslap rounds (utime {cpu_split['user_s']:.1f} s, stime "
                f"{cpu_split['system_s']:.1f} s): at the same instructions per cycle that makes "
                f"recording metrics about {s['pct'] * share:+.1f}% of the worker's CPU.")
    clocks = s["clocks_on"] - s["clocks_off"]
    return f"""{head}

How measured: rend l1only workers=1 with `metrics.enabled` true and false, started under
`valgrind --tool=callgrind --trace-children=yes` (valgrind follows rend into the worker it
fork+execs), each with its own memcached. In each of {rounds} rounds a fresh instance of each
(one at a time, alternating which goes first) is filled with the same {_ir_keys(ir)} keys
(`{ir['fill']}`), warmed up with {warmup:,} requests, then sent a window of {n1:,} and one of
{n2:,} requests: `{ir['command']}` (the memcaslap profile: 90% get / 10% set, 32-byte keys,
100-byte values, 32 connections), with `callgrind_control -z` before and `-d` after every
window on the worker. Instructions per request = (Ir({n2:,}) − Ir({n1:,})) / {n2 - n1:,}, so
the per-window costs (connects, closes) cancel. Counts user-space instructions of the worker
only. The same request stream gives nearly the same count every time; what varies (the range
below) is batching, which depends on timing, and malloc's cost, which depends on each
process's heap layout.

{chr(10).join(rows)}{where}

Cost of recording metrics: **{s['pct']:+.2f}% instructions per request** ({verdict}).{user}
Caveat: valgrind hides the vDSO, so under it each clock_gettime is a syscall whose kernel side
is not counted; with metrics on the worker reads the clock {clocks:.2f} more times per
request, natively a vDSO call of a few tens of nanoseconds each."""


def _ir_keys(ir):
    m = re.search(r"--key-space (\d+)", ir.get("fill") or "")
    return m.group(1) if m else "?"


def _metrics_wallclock_part(summaries, runs, failures):
    head = "### (b) Wall clock: memcaslap ops/s and CPU per request"
    on, off = summaries.get("rend-w1"), summaries.get("rend-w1-nometrics")
    if not on or not off:
        why = failures.get("rend-w1-nometrics") or failures.get("rend-w1") or "a target did not run"
        return f"{head}\n\nNot measured: {why}."
    paired_ops, paired_cpu = [], []
    by_rep = {r["rep"]: r for r in runs.get("rend-w1-nometrics", [])}
    for r in runs.get("rend-w1", []):
        o = by_rep.get(r["rep"])
        if o:
            paired_ops.append(_pct(r["ops_per_s"], o["ops_per_s"]))
            paired_cpu.append(_pct(r["proxy_us"], o["proxy_us"]))
    quiet_on = [r for r in runs.get("rend-w1", []) if r["other_cores"] <= 0.15]
    quiet_off = [r for r in runs.get("rend-w1-nometrics", []) if r["other_cores"] <= 0.15]
    quiet_row = ""
    if len(quiet_on) >= 2 and len(quiet_off) >= 2:
        q_on = {k: statistics.median(r[k] for r in quiet_on) for k in ("ops_per_s", "proxy_us")}
        q_off = {k: statistics.median(r[k] for r in quiet_off) for k in ("ops_per_s", "proxy_us")}
        quiet_row = (f"\n| true vs false (medians of the quiet runs only: {len(quiet_on)} on, "
                     f"{len(quiet_off)} off, other CPU ≤ 0.15 cores) "
                     f"| {_pct(q_on['ops_per_s'], q_off['ops_per_s']):+.1f}% "
                     f"| {_pct(q_on['proxy_us'], q_off['proxy_us']):+.1f}% | |")
    d_ops, d_cpu = _pct(on["ops_per_s"], off["ops_per_s"]), _pct(on["proxy_us"], off["proxy_us"])
    p_ops = statistics.median(paired_ops) if paired_ops else float("nan")
    p_cpu = statistics.median(paired_cpu) if paired_cpu else float("nan")
    # Rounds that disagree in sign mean run-to-run noise is larger than the effect.
    mixed = any(min(xs) < 0 < max(xs) for xs in (paired_ops, paired_cpu) if len(xs) >= 2)
    verdict = ("the rounds disagree in sign, so run-to-run noise on this machine is larger than "
               "the effect: judge by (a)" if mixed else "the rounds agree in sign")
    n = len(runs.get("rend-w1", []))
    return f"""{head}

How measured: the memcaslap load above against two native rend l1only workers=1 instances that
differ only in `metrics.enabled` (each with its own memcached), {n} runs each in the same
interleaved rounds (the order reversed every other round), medians; rend CPU = supervisor +
worker from /proc; "paired" = over rounds, the difference between the two runs of the same round
(less sensitive to drift), as median (quartiles, range).

| metrics.enabled | ops/s | rend CPU µs/request | backend memcached CPU µs/request |
|---|---:|---:|---:|
| false | {off['ops_per_s']:,.0f} | {off['proxy_us']:.2f} | {off['memcached_us']:.2f} |
| true (default) | {on['ops_per_s']:,.0f} | {on['proxy_us']:.2f} | {on['memcached_us']:.2f} |
| true vs false (medians) | {d_ops:+.1f}% | {d_cpu:+.1f}% | |
| true vs false (paired, per round: median) | {p_ops:+.1f}% | {p_cpu:+.1f}% | |{quiet_row}

Paired per round: ops/s {_spread(paired_ops)}; CPU/request {_spread(paired_cpu)} ({verdict}).
Each round: ops/s {", ".join(f"{x:+.1f}%" for x in paired_ops)};
CPU/request {", ".join(f"{x:+.1f}%" for x in paired_cpu)}."""


def _split_table(split):
    """rend l1only vs l1l2 under get-only and set-only loads."""
    if not split:
        return ("Split by command: not measured (needs rend l1only workers=1, rend l1l2 and "
                "rend-loadgen).")
    m = split["medians"]
    rows = ["| load | l1only ops/s | l1l2 ops/s | l1l2 ÷ l1only | p50 µs l1only → l1l2 "
            "| p99 µs l1only → l1l2 | rend CPU µs/req l1only → l1l2 | rend-l2 CPU µs/req "
            "| rend + rend-l2 CPU vs l1only |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for mode, label in (("get", "get-only, every get an L1 hit"), ("set", "set-only")):
        a, b = m.get(("rend-w1", mode)), m.get(("rend-l1l2", mode))
        if not a or not b:
            rows.append(f"| {label} | FAILED | | | | | | | |")
            continue
        rows.append(f"| {label} | {a['ops_per_s']:,.0f} | {b['ops_per_s']:,.0f} "
                    f"| {_fmt_ratio(b['ops_per_s'] / a['ops_per_s'])} | {a['p50']:.0f} → {b['p50']:.0f} "
                    f"| {a['p99']:.0f} → {b['p99']:.0f} | {a['proxy_us']:.2f} → {b['proxy_us']:.2f} "
                    f"| {b['l2_us']:.2f} | {_fmt_ratio((b['proxy_us'] + b['l2_us']) / a['proxy_us'])} |")
    verdict = ""
    a, b = m.get(("rend-w1", "get")), m.get(("rend-l1l2", "get"))
    if a and b:
        r = b["ops_per_s"] / a["ops_per_s"]
        verdict = (f"\n\nL1-hit gets alone with L2 enabled: {r * 100:.0f}% of l1only's ops/s ("
                   + ("within the 10% aim" if r >= 0.9 else f"**{(1 - r) * 100:.0f}% slower: outside the 10% aim**")
                   + f"), rend CPU per get {_pct(b['proxy_us'], a['proxy_us']):+.0f}%.")
    c = split["commands"]
    return f"""Split by command (how measured: rend-loadgen against the same two instances, get-only
`{c.get('get', '?')}` after an unmeasured `{c.get('fill', '?')}` through the main port, and
set-only `{c.get('set', '?')}`; L1 flushed before each, {len(next(iter(split['runs'].values()), []))}
interleaved runs each, medians; CPU per request from /proc over the measured run):

{chr(10).join(rows)}{verdict}"""


def _l2_targets(summaries, extra):
    """The L2 paths against the aims they are held to, each ratio from the sections below, and
    beside it the same path with memcached standing in for rend-l2 (the floor section)."""
    rows = ["| path | measured | with memcached as L2 (the hop's floor) | aim | met |", "|---|---:|---:|---:|---|"]

    def row(label, value, aim, floor_value=None, better_high=True, fmt="{:.2f}×"):
        at_floor = fmt.format(floor_value) if floor_value is not None else "–"
        if value is None:
            rows.append(f"| {label} | not measured | {at_floor} | {aim} | |")
            return
        target = float(aim.strip("≥≤× µs"))
        met = value >= target if better_high else value <= target
        rows.append(f"| {label} | {fmt.format(value)} | {at_floor} | {aim} | {'yes' if met else '**no**'} |")

    fl = extra.get("floor")

    def at_floor(workload, metric="ops_per_s"):
        r = floor.same_round_ratio(fl, "floor-memcached-l2", workload, metric) if fl else None
        return r[0] if r else None

    split = (extra.get("split") or {}).get("medians", {})
    a, b = split.get(("rend-w1", "set")), split.get(("rend-l1l2", "set"))
    row("set-only, l1l2 ÷ l1only ops/s (rend-loadgen, WAL on)", b["ops_per_s"] / a["ops_per_s"] if a and b else None,
        "≥ 0.75×", at_floor("set"))
    a, b = summaries.get("rend-w1"), summaries.get("rend-l1l2")
    row("memcaslap 90/10 mix, l1l2 ÷ l1only ops/s (floor: rend-loadgen's 90/10 mix)",
        b["ops_per_s"] / a["ops_per_s"] if a and b else None, "≥ 0.95×", at_floor("mix"))
    l2 = (extra.get("l2hit") or {}).get("medians", {})
    a, b = l2.get("warm"), l2.get("batch")
    row("L2-hit path ÷ all-in-L1 ops/s (100 B values, batch port)",
        b["ops_per_s"] / a["ops_per_s"] if a and b else None, "≥ 0.8×")
    got = {k: r["read"] for k, r in ((extra.get("extstore") or {}).get("results") or {}).items() if "read" in r}
    rd, e, ram = got.get("rend-l1l2-ext"), got.get("extstore-tuned"), got.get("ram-rend-l1only")
    read_floor = at_floor("read")  # L1 miss + L2 hit without a backfill ÷ all-in-RAM, 4 KiB values
    row("8×-RAM working set: L2-hit reads ÷ rend's all-in-RAM proxying (floor: without the backfill)",
        rd["ops_per_s"] / ram["ops_per_s"] if rd and ram else None, "≥ 0.8×", read_floor)
    # The floor's gets/s against extstore: its ratio to all-in-RAM proxying, times all-in-RAM
    # proxying ÷ extstore tuned as the extstore section measured them.
    row("8×-RAM working set: rend gets/s ÷ extstore tuned", rd["ops_per_s"] / e["ops_per_s"] if rd and e else None,
        "≥ 1.0×", read_floor * ram["ops_per_s"] / e["ops_per_s"] if read_floor and ram and e else None)
    stand_in = ((fl or {}).get("medians") or {}).get(("floor-memcached-l2", "read"))
    row("8×-RAM: rend CPU per get (worker + L1 + rend-l2) ÷ extstore tuned's (memcached)",
        (rd["proxy_us"] + rd["memcached_us"] + rd["l2_us"]) / e["proxy_us"] if rd and e else None, "≤ 1.0×",
        stand_in["total_us"] / e["proxy_us"] if stand_in and e else None, better_high=False)
    return """## L2 paths against their aims

Each ratio compares two targets measured side by side in this run (the sections below say how).
The floor column is the same path through the same rend worker with a memcached as its L2 (the
section "The L2 hop's floor"): what any L2 process reached over this hop could give here.

""" + "\n".join(rows) + "\n"


def _l2_section(targets, summaries, failures, l2, split=None):
    head = "## L2 tier"
    parts = [head]
    a, b = summaries.get("rend-l1l2"), summaries.get("rend-w1")
    if a and b:
        ratio = a["ops_per_s"] / b["ops_per_s"]
        verdict = ("within the 10% aim" if ratio >= 0.9
                   else f"**{(1 - ratio) * 100:.0f}% slower: outside the 10% aim**")
        parts.append(f"""### (a) L1-hit gets with L2 enabled vs l1only

How measured: the same memcaslap load (90% get / 10% set; every get an L1 hit, every set
written to L2 then L1) against rend workers=1 with `l2.enabled` (supervised rend-l2, RocksDB in
the temp dir, main port) and rend l1only workers=1, same interleaved rounds, medians. rend CPU
= supervisor + worker; rend-l2 is counted apart.

| target | ops/s | vs l1only | rend CPU µs/request | rend-l2 CPU µs/request | backend memcached CPU µs/request | rend + rend-l2 CPU vs l1only |
|---|---:|---:|---:|---:|---:|---:|
| rend l1only, workers=1 | {b['ops_per_s']:,.0f} | 1.00× | {b['proxy_us']:.2f} | – | {b['memcached_us']:.2f} | 1.00× |
| rend l1l2, workers=1 | {a['ops_per_s']:,.0f} | {_fmt_ratio(ratio)} | {a['proxy_us']:.2f} | {a['l2_us']:.2f} | {a['memcached_us']:.2f} | {_fmt_ratio((a['proxy_us'] + a['l2_us']) / b['proxy_us'])} |

With L2: {ratio * 100:.0f}% of l1only's ops/s under the memcaslap mix ({verdict}).

{_split_table(split)}""")
    else:
        why = failures.get("rend-l1l2") or "the rend l1l2 or l1only target did not run"
        parts.append(f"### (a) L1-hit gets with L2 enabled vs l1only\n\nNot measured: {why}.")

    if not l2:
        parts.append("### (b) L1 miss, L2 hit\n\nNot measured (see Skipped / failed).")
        return "\n\n".join(parts)
    meds = l2.get("medians", {})
    ref = meds.get("warm")
    labels = {"warm": "main port, every key in L1 (reference)",
              "cold": "main port, L1 cold: first read of a key backfills",
              "batch": "batch port, L1 empty: every get an L1 miss + L2 hit, no backfill"}
    rows = ["| path | ops/s | vs all-L1 | p50 µs | p90 µs | p99 µs | p99.9 µs | client hit ratio "
            "| L1 hit ratio | backfills per get | rend CPU µs/req | rend-l2 CPU µs/req | rend-loadgen CPU µs/req |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for mode in ("warm", "cold", "batch"):
        m = meds.get(mode)
        if not m:
            continue
        vs = _fmt_ratio(m["ops_per_s"] / ref["ops_per_s"]) if ref else "n/a"
        fmt = lambda x: f"{x * 100:.1f}%" if x is not None else "n/a"
        rows.append(f"| {labels[mode]} | {m['ops_per_s']:,.0f} | {vs} | {_lat(m)} "
                    f"| {fmt(m.get('hit_ratio'))} | {fmt(m.get('l1_hit_ratio'))} "
                    f"| {m.get('backfill_ratio', 0):.3f} | {m['proxy_us']:.2f} | {m['l2_us']:.2f} "
                    f"| {m['loadgen_us']:.2f} |")
    load = l2.get("load")
    load_line = ""
    if load:
        l1 = l2.get("load_l1", {})
        load_line = (f"Load: {l2['keys']} keys × 100 B through the batch port at "
                     f"{load['ops_per_s']:,.0f} sets/s, p50 {load['p50']:.0f} µs, p99 "
                     f"{load['p99']:.0f} µs (each set an L2 write plus an L1 refresh that finds "
                     f"nothing); L1 items afterwards: {l1.get('curr_items', 'n/a')}.")
    cmds = l2.get("commands", {})
    parts.append(f"""### (b) L1 miss, L2 hit

How measured: on the same rend l1l2 instance after the memcaslap rounds, {l2['keys']} keys
(100-byte values) loaded into L2 only: `{cmds.get('load', '?')}` against the batch port into an
empty L1 (L1 flushed with `flush_all` sent straight to its memcached). Then get-only loads,
uniform over those keys, {len(l2['runs'].get('batch', []))} runs per path (batch and cold
interleaved, L1 flushed before each), medians: `{cmds.get('batch', '?')}` against the batch
port, the same against the main port from a cold L1, and (reference) against the main port after
a fill through the main port put every key in L1. L1 hit ratio and backfills from the
memcached's and rend's `stats` around each run; CPU per request from /proc over the run.

{load_line}

{chr(10).join(rows)}""")
    if ref and meds.get("batch"):
        m = meds["batch"]
        parts.append(f"L2-hit path (batch port) vs all-L1: {m['ops_per_s'] / ref['ops_per_s']:.2f}× "
                     f"the ops/s, p50 {m['p50'] / ref['p50']:.1f}× and p99 {m['p99'] / ref['p99']:.1f}× "
                     f"the latency; rend + rend-l2 spend {m['proxy_us'] + m['l2_us']:.1f} µs of CPU per "
                     f"L2 hit vs {ref['proxy_us'] + ref['l2_us']:.1f} µs per L1 hit.")
    return "\n\n".join(parts)


def _extstore_section(ext, args):
    head = "## Against memcached's flash tier (extstore)"
    if not ext:
        return head + "\n\nNot run (see Skipped / failed above)."
    ws = ext["keys"] * ext["value"] / 2**20
    rows = ["| system | fill sets/s | read gets/s | hit ratio (hits/gets) | read p50 µs | p99 µs "
            "| p99.9 µs | what happened to the data |",
            "|---|---:|---:|---:|---:|---:|---:|---|"]
    got = {}
    for t in ext["targets"]:
        res = ext["results"].get(t.key, {})
        if "read" not in res:
            why = res.get("skipped") or res.get("failed") or "not run"
            rows.append(f"| {t.name} | {why} | | | | | | |")
            continue
        f, r = res["fill"], res["read"]
        got[t.key] = r
        fd, rd = res.get("fill_delta", {}), res.get("read_delta", {})
        af = res.get("after_fill", {})
        if t.key.startswith("ram-"):
            note = f"reference: all {ext['keys']:,} keys in RAM, every get a hit"
        elif t.key.startswith("extstore"):
            note = (f"after the fill memcached indexed {af.get('curr_items', 0):,} items in RAM "
                    f"(the {ext['keys']:,} keys + 1 start-up probe when nothing was lost), "
                    f"{af.get('extstore_objects_used', 0):,} of them on flash; "
                    f"during the fill {fd.get('extstore_objects_written', 0):,} items were written to "
                    f"flash, {fd.get('evictions', 0):,} evicted from RAM (an evicted item is gone, "
                    f"its flash copy included), "
                    f"{fd.get('extstore_objects_evicted', 0) + rd.get('extstore_objects_evicted', 0):,} "
                    f"dropped from flash, slab pages moved: {af.get('slabs_moved', 'n/a')}; reads: "
                    f"{rd.get('get_extstore', 0):,} served from flash")
        else:
            rr = res.get("rend_read", {})
            note = (f"L1 evicted {fd.get('evictions', 0):,} items during the fill (L2 keeps "
                    f"them); reads: L1 hits {rd.get('get_hits', 0):,} of {rd.get('cmd_get', 0):,}, "
                    f"{rr.get('backfills', 0):,} served from L2 and backfilled")
        hit = f"{r['hit_ratio'] * 100:.2f}%" if r.get("hit_ratio") is not None else "n/a"
        paced = f" (paced: `--rate {t.fill_rate}`)" if getattr(t, "fill_rate", None) else ""
        rows.append(f"| {t.name} | {f['ops_per_s']:,.0f}{paced} | {r['ops_per_s']:,.0f} | {hit} "
                    f"| {r['p50']:.0f} | {r['p99']:.0f} | {r['p99_9']:.0f} | {note} |")
    why = ""
    res_e = ext["results"].get("extstore", {})
    af = res_e.get("after_fill", {})
    if "read" in res_e and res_e["read"].get("hit_ratio", 1) < 0.999:
        why = (f"\n\nWhy extstore with its defaults lost keys: memcached keeps every key's item "
               f"header in its {args.ext_ram_mb} MiB even when the value is on flash. ")
        if af.get("slabs_moved") == 0:
            why += ("The fill handed all slab pages to the 4 KiB item class and memcached moved no page "
                    "(`slabs_moved` 0) to the small class that holds the headers of flash items, so "
                    "those headers were evicted, and the values on flash with them: only "
                    f"{af.get('extstore_objects_used', 0):,} flash items stayed reachable. ")
        else:
            why += (f"memcached moved {af.get('slabs_moved')} slab pages, not enough to index every "
                    "key; evicted headers take their flash values with them. ")
        why += ("The tuned row writes items to flash at once and keeps RAM free for those headers. "
                "rend's L2 keeps its index on disk (RocksDB), so L1's RAM does not bound how many "
                "keys it holds.")
    return f"""{head}

How measured: a working set of {ext['keys']} keys × {ext['value']} B = {ws:.0f} MiB, 8× the
{args.ext_ram_mb} MiB of RAM both get: memcached `-m {args.ext_ram_mb}` with extstore on a
{args.ext_flash_mb} MiB file (`-o ext_path=FILE:{args.ext_flash_mb}m`, TCP), once with every other
ext_* option at its default and once tuned to keep every key (`{EXTSTORE_TUNING}`, its fill
paced at {EXTSTORE_TUNED_FILL_RATE:,} sets/s so that its flash writer keeps up), and rend l1l2
workers=1 whose L1 is memcached `-m {args.ext_ram_mb}` with `l2.max_bytes` {args.ext_flash_mb} MiB
and `l2.block_cache_mb` {args.ext_ram_mb} (main port). For reference, the same load against
memcached with {DEFAULT_MEMORY_MB} MiB, where every key fits in RAM, direct and behind a proxy
(nutcracker; rend l1only). Each: fill every key once `{ext['commands']['fill']}`, then
{ext['reads']} uniform random gets over all keys `{ext['commands']['read']}`; one run each, one
after the other, on a fresh server. The flash files sit on the same disk; the OS page cache
(shared, not limited) serves most of their reads, so the ops/s compare the software paths, not
SSDs.

{chr(10).join(rows)}{_extstore_ratios(ext, got)}{why}"""


def _extstore_ratios(ext, got):
    """rend against each extstore run, then the in-RAM references that bound
    what any proxy in front of memcached can serve on this machine."""
    rd = got.get("rend-l1l2-ext")
    if not rd:
        return ""
    out = []
    for key, label in (("extstore", "extstore (defaults)"), ("extstore-tuned", "extstore tuned")):
        e = got.get(key)
        if not e:
            continue
        e_hits, r_hits = e["ops_per_s"] * e["hit_ratio"], rd["ops_per_s"] * rd["hit_ratio"]
        # Both cores are saturated, so CPU per get sets the ops/s. extstore is one server
        # process; rend is three (worker, its L1 memcached, rend-l2), each hop a socket
        # write and a wake-up of another process.
        e_cpu = e["loadgen_us"] + e["proxy_us"]
        out.append(f"rend vs {label}: hit ratio {rd['hit_ratio'] * 100:.1f}% vs "
                   f"{e['hit_ratio'] * 100:.1f}%, read ops/s **{rd['ops_per_s'] / e['ops_per_s']:.2f}×**, "
                   f"hits/s **{r_hits / e_hits:.2f}×** ({r_hits:,.0f} vs {e_hits:,.0f}), fill ops/s "
                   f"{ext['results']['rend-l1l2-ext']['fill']['ops_per_s'] / ext['results'][key]['fill']['ops_per_s']:.2f}×. "
                   f"CPU per get, µs: {e_cpu:.1f} (client {e['loadgen_us']:.1f} + memcached "
                   f"{e['proxy_us']:.1f}; {(1 - e['hit_ratio']) * 100:.0f}% of its gets are misses "
                   f"that move no value).")
    r_cpu = rd["loadgen_us"] + rd["proxy_us"] + rd["memcached_us"] + rd["l2_us"]
    out.append(f"rend CPU per get, µs: {r_cpu:.1f} (client {rd['loadgen_us']:.1f} + worker "
               f"{rd['proxy_us']:.1f} + L1 memcached {rd['memcached_us']:.1f} (a get miss and the "
               f"backfill add) + rend-l2 {rd['l2_us']:.1f}), every get moving a {ext['value']} B value.")
    m = got.get("ram-memcached")
    if m:
        refs = [f"{label} {got[key]['ops_per_s']:,.0f} ({got[key]['ops_per_s'] / m['ops_per_s']:.2f}×)"
                for key, label in (("ram-rend-l1only", "rend l1only"), ("ram-nutcracker", "nutcracker"))
                if key in got]
        line = (f"The proxy hop's own cost, with every key in RAM: memcached direct serves "
                f"{m['ops_per_s']:,.0f} gets/s; behind a proxy, {', '.join(refs)}.")
        if "ram-rend-l1only" in got:
            line += (f" rend's L2-hit reads run at {rd['ops_per_s'] / got['ram-rend-l1only']['ops_per_s']:.2f}× "
                     "its own all-in-RAM proxying: the rest is the L1 miss and backfill and the "
                     "rend-l2 read.")
        out.append(line)
    return "".join("\n\n" + x for x in out)


def _plot_section(name):
    head = "## Latency plot"
    if not name:
        return head + "\n\nNot drawn (see Skipped / failed above)."
    return f"""{head}

Latency percentiles (p50, p90, p99, p99.9; log scale) of the rend-loadgen runs above, medians
over the repetitions, drawn with gnuplot: `{name}`.

![latency percentiles]({name})"""


def _loadgen_raw(extra):
    rows = ["## Raw runs (rend-loadgen)", "",
            "| run | target / path | ops/s | p50 µs | p99 µs | p99.9 µs | hits | loadgen µs/req "
            "| proxy µs/req | rend-l2 µs/req | other CPU (cores) | attempts |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    lg = extra.get("loadgen")
    items = []
    if lg:
        for t in lg["targets"]:
            items += [(f"bench {r['rep']}", t.name, r) for r in lg["runs"].get(t.key, [])]
    split = extra.get("split")
    if split:
        names = {t.key: t.name for t in split["targets"]}
        for (key, mode), rs in split["runs"].items():
            items += [(f"{mode}-only {r['rep']}", names[key], r) for r in rs]
    l2 = extra.get("l2hit")
    if l2:
        for mode, rs in l2["runs"].items():
            items += [(f"L2 path {r['rep']}", mode, r) for r in rs]
    ext = extra.get("extstore")
    if ext:
        for t in ext["targets"]:
            res = ext["results"].get(t.key, {})
            for phase in ("fill", "read"):
                if phase in res:
                    res[phase].setdefault("attempts", 1)
                    items.append((f"extstore {phase}", t.name, res[phase]))
    if not items:
        return ""
    for run, what, r in items:
        hits = f"{r['hits']}/{r['gets']}" if r.get("gets") else "–"
        rows.append(f"| {run} | {what} | {r['ops_per_s']:,.0f} | {r['p50']:.0f} | {r['p99']:.0f} "
                    f"| {r['p99_9']:.0f} | {hits} | {r['loadgen_us']:.2f} | {r['proxy_us']:.2f} "
                    f"| {r['l2_us']:.2f} | {r['other_cores']:.2f} | {r.get('attempts', 1)} |")
    return "\n".join(rows)
