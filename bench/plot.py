"""The latency plot of the report: gnuplot, one PNG under bench/results/.

Panels (each only when its section ran): the rend-loadgen `bench` profile
per target; 100-byte gets from L1 vs from L2 (the L2-hit section); and the
4 KiB reads of the extstore comparison. Bars are p50/p90/p99/p99.9 in µs on
a log scale (medians over the repetitions where there are several).
"""

import os
import shutil
import subprocess

from procs import BenchError, Skip

PERCENTILES = (("p50", "p50"), ("p90", "p90"), ("p99", "p99"), ("p99_9", "p99.9"))
L2_MODES = (("warm", "main port, all in L1"),
            ("cold", "main port, cold L1 (backfill)"),
            ("batch", "batch port: L1 miss, L2 hit"))


def _panels(extra):
    panels = []
    lg = extra.get("loadgen")
    if lg and lg["medians"]:
        rows = [(t.short, lg["medians"][t.key]) for t in lg["targets"] if t.key in lg["medians"]]
        panels.append(("rend-loadgen bench profile (closed loop, 32 connections, 90% get / 10% set, "
                       "100 B values)", rows))
    l2 = extra.get("l2hit")
    if l2 and l2.get("medians"):
        rows = [(label, l2["medians"][mode]) for mode, label in L2_MODES if mode in l2["medians"]]
        panels.append((f"rend l1l2: 100 B gets over {l2['keys']} keys (closed loop, 32 connections)", rows))
    ext = extra.get("extstore")
    if ext:
        rows = []
        for t in ext["targets"]:
            r = ext["results"].get(t.key, {}).get("read")
            if r:
                hits = f", hits {100 * r['hit_ratio']:.1f}%" if r.get("hit_ratio") is not None else ""
                rows.append((t.short + hits, r))
        if rows:
            panels.append((f"{ext['value']} B gets over {ext['keys']} keys, working set 8x RAM "
                           "(closed loop, 32 connections)", rows))
    return panels


def _quote(s):
    return '"' + s.replace('"', "'") + '"'


def latency_png(results_dir, stamp, extra, work_dir):
    """Draw the PNG; returns its file name (relative to results_dir)."""
    if shutil.which("gnuplot") is None:
        raise Skip("gnuplot is not installed (Debian: gnuplot-nox; make bench installs it)")
    panels = _panels(extra)
    if not panels:
        raise Skip("no rend-loadgen latencies to plot (the loadgen sections did not run)")
    name = f"{stamp}-latency.png"
    path = os.path.join(results_dir, name)
    script = [
        f"set terminal pngcairo size 1200,{380 * len(panels) + 40} font 'sans,10'",
        f"set output {_quote(path)}",
        f"set multiplot layout {len(panels)},1",
        "set style data histogram",
        "set style histogram cluster gap 1",
        "set style fill solid 0.85 border -1",
        "set boxwidth 0.9",
        "set logscale y",
        "set yrange [10:*]",
        "set ylabel 'latency, µs (log scale)'",
        "set grid ytics mytics",
        "set key outside right top",
        "set xtics noenhanced",
        "set title noenhanced",
    ]
    for i, (title, rows) in enumerate(panels):
        data = os.path.join(work_dir, f"latency{i}.dat")
        with open(data, "w") as f:
            for label, m in rows:
                f.write(_quote(label) + " " + " ".join(f"{m.get(k, 0):.2f}" for k, _ in PERCENTILES) + "\n")
        script.append(f"set title {_quote(title)}")
        series = [f"{_quote(data)} using 2:xtic(1) title 'p50'"]
        series += [f"'' using {c + 2} title '{lab}'" for c, (_, lab) in enumerate(PERCENTILES) if c > 0]
        script.append("plot " + ", ".join(series))
    script.append("unset multiplot")
    gp = os.path.join(work_dir, "latency.gnuplot")
    with open(gp, "w") as f:
        f.write("\n".join(script) + "\n")
    try:
        out = subprocess.run(["gnuplot", gp], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise BenchError(f"gnuplot failed: {e}") from None
    if out.returncode != 0 or not os.path.exists(path) or os.path.getsize(path) == 0:
        raise BenchError(f"gnuplot failed (exit {out.returncode}): {out.stderr.strip()[-300:]}")
    shutil.copyfile(path, os.path.join(results_dir, "latest-latency.png"))
    return name
