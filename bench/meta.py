"""The meta-protocol part of `make bench`: the same rend-loadgen load sent in memcached's classic
text protocol and in its meta protocol (memcached 1.6's mg/ms), against memcached directly, rend
l1only and rend l1l2, in the same run.

Each target is a fresh instance of its own, started after the memcaslap targets are stopped (as
the extstore and chunked sections do), so the section runs alone with
`BENCH_TARGETS=none BENCH_SECTIONS=meta`. Per (target, protocol) and round: memcached flushed, the
key space filled through the target in that protocol (not measured), then rend-loadgen `mix` with
the bench profile (90% get / 10% set, 32-byte keys, 100-byte values, 10000 uniform keys, 32
connections, one request in flight each) for BENCH_LOADGEN_SECONDS, every value checked. The
measured run has no preload phase, so the servers' CPU per request covers exactly its requests.
Rounds interleave every (target, protocol) pair, in reverse order every other round; medians.
"""

import os
import statistics

import loadgen
import sections
from measure import undisturbed
from procs import BenchError, flush, log, start_targets
from targets import DirectMemcached, Rend

PROTOCOLS = ("text", "meta")
KEYS = 10000
PROFILE = ("--get-ratio", "0.9", "--key-length", "32", "--value-size", "100", "--key-space", KEYS)


def make_targets(workdir, procs, build_dir):
    """memcached direct, rend l1only and rend l1l2 (workers=1 both, as rend-w1 and rend-l1l2)."""
    return [
        DirectMemcached(workdir, procs, key="meta-memcached", name="memcached (direct)"),
        Rend(workdir, procs, build_dir, workers=1, key="meta-rend-l1only", name="rend l1only, workers=1"),
        Rend(workdir, procs, build_dir, workers=1, l2=True, key="meta-rend-l1l2",
             name="rend l1l2 (L2 enabled), workers=1"),
    ]


def _describe(label):
    def line(r):
        l2 = f"  rend-l2 {r['l2_us']:5.2f}" if r.get("l2_us") else ""
        return (f"{label:44s} {r['ops_per_s']:>9,.0f} ops/s  p50 {r['p50']:6.1f}  p99 {r['p99']:6.1f} us  "
                f"proxy {r['proxy_us']:5.2f}{l2}  memcached {r['memcached_us']:5.2f}  "
                f"loadgen {r['loadgen_us']:5.2f} us/req  other {r['other_cores']:.2f} cores")
    return line


def _one_run(t, protocol, args, lg, rep):
    fill = loadgen.argv(lg, t.address, "--protocol", protocol, "-w", "fill", *PROFILE[2:])
    cmd = loadgen.argv(lg, t.address, "--protocol", protocol, "-w", "mix", *PROFILE, "--no-preload",
                       "-d", args.loadgen_seconds)

    def one():
        flush(t.backend)
        loadgen.run(t, fill, 300, os.path.join(t.dir, f"meta-fill-{protocol}{rep}.out"))
        r = loadgen.run(t, cmd, args.loadgen_seconds + 120, os.path.join(t.dir, f"meta-{protocol}{rep}.out"))
        r["rep"] = rep
        return r
    def shown(argv):  # one line for both protocols
        return loadgen.shown(argv).replace(f"--protocol {protocol}", "--protocol <text|meta>")
    return one, shown(fill), shown(cmd)


def measure(workdir, procs, build_dir, args, lg, failures, skipped):
    """Returns {"targets", "runs": {(key, protocol): [run]}, "medians", "commands"}."""
    targets = start_targets(make_targets(workdir, procs, build_dir), failures, skipped, section="meta")
    pairs = [(t, p) for t in targets for p in PROTOCOLS]
    runs = {(t.key, p): [] for t, p in pairs}
    commands = {}
    try:
        for rep in range(1, args.reps + 1):
            for t, protocol in (pairs if rep % 2 else list(reversed(pairs))):
                fkey = f"meta/{t.key}/{protocol}"
                if fkey in failures:
                    continue
                one, commands["fill"], commands["run"] = _one_run(t, protocol, args, lg, rep)
                try:
                    runs[(t.key, protocol)].append(
                        undisturbed(one, args, _describe(f"{protocol} {t.name} run {rep}")))
                except BenchError as e:
                    log(f"FAILED the {protocol} run against {t.name}: {e}")
                    failures[fkey] = f"meta section, {protocol} against {t.name}, run {rep}: {e}"
    finally:
        procs.stop([p for t in targets for p in t.processes()])
    return {"targets": targets, "runs": runs, "commands": commands,
            "medians": {k: sections.median_of(v) for k, v in runs.items() if v}}


def _ratio(meta, text, key):
    return f"{meta[key] / text[key]:.2f}×" if meta and text and text.get(key) else "—"


def paired_ratios(result, key, metric):
    """meta ÷ text of `metric` per round for target `key`: the two runs of a round are adjacent, so
    the machine's drift between rounds (large on a shared VM) cancels out of each ratio."""
    text = {r["rep"]: r for r in result["runs"].get((key, "text"), [])}
    meta = {r["rep"]: r for r in result["runs"].get((key, "meta"), [])}
    return [meta[rep][metric] / text[rep][metric] for rep in sorted(text) if rep in meta and text[rep][metric]]


def _paired(result, key, metric):
    ratios = paired_ratios(result, key, metric)
    if not ratios:
        return "—"
    return f"{statistics.median(ratios):.2f}× ({min(ratios):.2f}–{max(ratios):.2f})"


def table(result):
    """One row per (target, protocol), medians; the meta row carries the meta ÷ text ratios."""
    rows = ["| target | protocol | ops/s | meta ÷ text ops/s (medians) | same-round meta ÷ text ops/s "
            "| p50 µs | p99 µs | rend CPU µs/request | rend-l2 CPU µs/request | memcached CPU µs/request "
            "| same-round meta ÷ text rend CPU/request | rend-loadgen CPU µs/request |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    meds = result["medians"]
    for t in result["targets"]:
        direct = t.proxy is None
        text = meds.get((t.key, "text"))
        for protocol in PROTOCOLS:
            m = meds.get((t.key, protocol))
            if m is None:
                rows.append(f"| {t.name} | {protocol} | FAILED | | | | | | | | | |")
                continue
            meta_row = protocol == "meta"
            rend = "—" if direct else f"{m['proxy_us']:.2f}"
            l2 = f"{m['l2_us']:.2f}" if getattr(t, "l2", False) else "—"
            mc = m["proxy_us"] if direct else m["memcached_us"]
            ops_ratios = f"{_ratio(m, text, 'ops_per_s')} | {_paired(result, t.key, 'ops_per_s')}" if meta_row else " | "
            # Direct memcached: its own CPU is in the memcached column, and the ratio is of it.
            cpu_ratio = _paired(result, t.key, "proxy_us") if meta_row else ""
            rows.append(f"| {t.name} | {protocol} | {m['ops_per_s']:,.0f} | {ops_ratios} | {m['p50']:.1f} "
                        f"| {m['p99']:.1f} | {rend} | {l2} | {mc:.2f} | {cpu_ratio} | {m['loadgen_us']:.2f} |")
    return "\n".join(rows)


def render(result, args):
    """The report's section (Markdown)."""
    head = "## Meta protocol: text vs meta, same load"
    if not result or not result["medians"]:
        return head + "\n\nNot measured (see Skipped / failed).\n"
    return f"""{head}

How measured: a fresh memcached -m 1024 -t 4 direct, rend l1only and rend l1l2 (workers=1 each);
per target, protocol and round: memcached flushed, `{result['commands'].get('fill')}` (not
measured), then `{result['commands'].get('run')}` (gets are `get <key>` / `mg <key> v f`, sets
`set` / `ms <key> 100 F<flags> T0`; every value, flag and status checked), {args.reps} rounds interleaving every target and protocol (a target's text and meta runs
adjacent), medians. Same-round ratios: meta ÷ text of the two adjacent runs of each round, median
(range), which the machine's drift between rounds does not enter. rend CPU: supervisor + worker
utime+stime over the measured run ÷ its requests (rend-l2 and memcached apart); for direct
memcached its own CPU is in the memcached column (and its CPU ratio is of that).

{table(result)}
"""
