"""Markdown report for bench.py: machine description, the summary table,
every raw run, and how to reproduce."""

import os
import platform
import shutil
import subprocess
import time

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
    rows = ["| target | run | ops/s | wall s | proxy µs/req | memcached µs/req "
            "| memcaslap µs/req | get misses | other CPU (cores) | attempts |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for t in targets:
        for r in runs.get(t.key, []):
            rows.append(f"| {t.name} | {r['rep']} | {r['ops_per_s']:,} | {r['wall_s']:.1f} "
                        f"| {r['proxy_us']:.2f} | {r['memcached_us']:.2f} | {r['client_us']:.2f} "
                        f"| {r['get_misses']} | {r['other_cores']:.2f} | {r['attempts']} |")
    return "\n".join(rows)


def _noise_note(runs, noisy_cores):
    worst = max((r["other_cores"] for rs in runs.values() for r in rs), default=0.0)
    verdict = ("quiet enough" if worst <= noisy_cores
               else f"**noisy: above {noisy_cores} cores, treat the numbers with care**")
    return (f"Other CPU use during the runs (whole machine minus the target's processes and "
            f"memcaslap, includes some softirq work for our own traffic): at most "
            f"{worst:.2f} cores — {verdict}.")


def render(env, targets, summaries, runs, failures, skipped, command, load_cfg, args,
           warmup_ops, noisy_cores):
    notes = list(skipped) + [f"{t.name}: failed ({failures[t.key]})" for t in targets
                             if t.key in failures]
    servers = "\n".join(f"- {t.name}: `{c}`" for t in targets for c in t.commands)
    return f"""# rend benchmark — {env['date']}

## Machine

- nproc: {env['nproc']}; CPU: {env['cpu']}; kernel {env['kernel']}
- load average at start: {env['load']}
- memcached: {env['memcached']}; nutcracker: {env['nutcracker']}; memcaslap: {env['memcaslap']}
- rend: git {env['rend']}, CMake build type {env['build_type']}

## Load

Same for every target, {args.reps} measured runs each (interleaved rounds, after one
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

{table(targets, summaries, failures)}

- *proxy CPU*: utime+stime (/proc/PID/stat fields 14+15) of all the proxy's
  processes, read right before and after the run, divided by the ops. rend =
  supervisor + every rend-worker; nutcracker = its one process; direct row =
  memcached itself. Never includes memcached for the proxy rows.
- *proxy CPU vs memcached's own*: proxy CPU per request ÷ the direct
  memcached's CPU per request (how expensive the proxy is, in memcacheds).
- *backend memcached*: CPU per request of the memcached behind that target.
- *memcaslap*: the load generator's own CPU per request (from wait4 rusage).

Skipped / failed: {"; ".join(notes) if notes else "nothing skipped."}

{_noise_note(runs, noisy_cores)}

## Raw runs

{_raw_runs(targets, runs)}

## Servers

Each target has its own memcached; both proxies reach it over a unix socket.

{servers}

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


def write(results_dir, text):
    """bench/results/<timestamp>.md plus a copy as latest.md."""
    path = os.path.join(results_dir, time.strftime("%Y%m%d-%H%M%S") + ".md")
    with open(path, "w") as f:
        f.write(text)
    shutil.copyfile(path, os.path.join(results_dir, "latest.md"))
    return path
