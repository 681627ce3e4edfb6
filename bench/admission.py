"""The backfill-admission part of `make bench`: rend l1l2 with l2.backfill_admission "all" (every
L2 hit that missed L1 is copied into L1) against "frequency" (only keys that missed L1 twice
lately, while L1 evicts), with an L1 much smaller than the working set.

A fresh rend l1l2 target per policy (workers=1, L1 memcached -m 64): "all", and "frequency" at
two sketch widths (see POLICIES), each with its own rend-l2, started after the memcaslap targets are stopped, so the section runs alone with
`BENCH_TARGETS=none BENCH_SECTIONS=admission`. Each target's L2 is filled once through the batch
port (which does not backfill, so L1 stays empty) with 8x L1's memory of 4000-byte values; the
4x working set is the first half of those keys. Then get-only Zipf loads (theta 0.9, 1.0, 1.1)
over 4x and 8x: per (working set, theta, policy) and round, an unmeasured warm-up of WARM_S
(L1 adapts to the new distribution from the previous run's contents) and a measured run of
RUN_S, every value checked. The policies of a (working set, theta, round) read the same key
sequence (the same --stream) and run adjacently, their order alternating by round; medians.

L1 hit ratio: memcached's get_hits / (get_hits + get_misses) over the measured run (every
client get reads L1 first). CPU per get: rend (supervisor + worker) and rend-l2 utime+stime over
the measured run, divided by its gets.
"""

import os
import statistics

import loadgen
import sections
from measure import once_quiet, record_run
from procs import BenchError, log, server_stats, start_targets, stats_delta
from targets import Rend

THETAS = (0.9, 1.0, 1.1)
FACTORS = (4, 8)  # working set ÷ L1 memory
L1_MB = 64
VALUE = 4000
# Policies measured: label -> l2 settings. `l2.admission_width` about the items L1 holds
# (64 MiB / ~4.5 KB memcached chunks ≈ 14,500), as backfill_admission.h advises, and an eighth of
# it: a window of 10x the width is ~20 s of misses at the first, so a key needs two misses within
# ~2.5 s to be admitted at the second.
POLICIES = {
    "all": {"backfill_admission": "all"},
    "frequency": {"backfill_admission": "frequency", "admission_width": 16384},
    "frequency-w2048": {"backfill_admission": "frequency", "admission_width": 2048},
}
WARM_S, RUN_S = 3, 4
ROUNDS = int(os.environ.get("BENCH_ADMISSION_ROUNDS", 2))  # 3 policies x 12 runs of ~9 s a round

L1_STATS = ("get_hits", "get_misses", "evictions")
REND_STATS = ("cmd_get", "backfills", "backfills_skipped", "l2_requests")


def keys_for(factor):
    return factor * (L1_MB << 20) // VALUE


def make_targets(workdir, procs, build_dir):
    return [Rend(workdir, procs, build_dir, workers=1, l2=True, memory_mb=L1_MB, l2_settings=settings,
                 key=f"admission-{label}", name=f"rend l1l2, workers=1, L1 memcached -m {L1_MB}, {describe(label)}")
            for label, settings in POLICIES.items()]


def describe(label):
    s = POLICIES[label]
    width = f", admission_width {s['admission_width']}" if "admission_width" in s else ""
    return f"backfill_admission {s['backfill_admission']}{width}"


def _describe(label):
    def line(r):
        return (f"{label:44s} {r['ops_per_s']:>9,.0f} gets/s  L1 hits {100 * r['l1_hit_ratio']:5.1f}%  "
                f"backfills/get {r['backfill_ratio']:.3f}  skipped/get {r['skip_ratio']:.3f}  "
                f"rend {r['proxy_us']:5.2f} + rend-l2 {r['l2_us']:5.2f} us/get  other {r['other_cores']:.2f} cores")
    return line


def _fill(t, lg):
    n = keys_for(max(FACTORS))
    cmd = loadgen.argv(lg, t.batch_address, "-w", "fill", "--key-space", n, "--value-size", VALUE)
    r = loadgen.run(t, cmd, 900, os.path.join(t.dir, "admission-fill.out"))
    items = int(server_stats(t.backend).get("curr_items", -1))
    log(f"{t.name}: {n} keys x {VALUE} B into L2 through the batch port at {r['ops_per_s']:,.0f} sets/s; "
        f"L1 items afterwards: {items}")
    return loadgen.shown(cmd)


def _read_argv(lg, t, factor, theta, seconds, stream):
    return loadgen.argv(lg, t.address, "-w", "mix", "--get-ratio", "1.0", "--no-preload",
                        "--key-space", keys_for(factor), "--value-size", VALUE, "--key-dist", "zipf",
                        "--zipf-theta", theta, "--stream", stream, "-d", seconds)


def _one_run(t, lg, factor, theta, rep, stream):
    warm = _read_argv(lg, t, factor, theta, WARM_S, 2 * stream + 1)
    cmd = _read_argv(lg, t, factor, theta, RUN_S, 2 * stream + 2)
    tag = f"{factor}x-{theta}-{rep}"

    def one():
        loadgen.run(t, warm, WARM_S + 120, os.path.join(t.dir, f"admission-warm-{tag}.out"))
        l1_b, rend_b = server_stats(t.backend), server_stats(t.address)
        r = loadgen.run(t, cmd, RUN_S + 120, os.path.join(t.dir, f"admission-{tag}.out"))
        l1_a, rend_a = server_stats(t.backend), server_stats(t.address)
        r["l1"], r["rend"] = stats_delta(l1_b, l1_a, L1_STATS), stats_delta(rend_b, rend_a, REND_STATS)
        l1_gets = r["l1"].get("get_hits", 0) + r["l1"].get("get_misses", 0)
        r["l1_hit_ratio"] = r["l1"].get("get_hits", 0) / l1_gets if l1_gets else 0.0
        r["backfill_ratio"] = r["rend"].get("backfills", 0) / r["gets"] if r["gets"] else 0.0
        r["skip_ratio"] = r["rend"].get("backfills_skipped", 0) / r["gets"] if r["gets"] else 0.0
        r["evictions_per_get"] = r["l1"].get("evictions", 0) / r["gets"] if r["gets"] else 0.0
        r["cpu_us"] = r["proxy_us"] + r["l2_us"]
        r["rep"] = rep
        return r
    return one, loadgen.shown(cmd).replace(f"--stream {2 * stream + 2}", "--stream <n>")


def measure(workdir, procs, build_dir, args, lg, failures, skipped):
    """Returns {"targets", "runs": {(policy, factor, theta): [run]}, "medians", "commands"}."""
    targets = start_targets(make_targets(workdir, procs, build_dir), failures, skipped, section="admission")
    by_policy = {t.key[len("admission-"):]: t for t in targets}
    configs = [(f, th) for f in FACTORS for th in THETAS]
    runs = {(p, f, th): [] for p in by_policy for f, th in configs}
    commands = {}
    try:
        for t in targets:
            once_quiet(args)
            commands["fill"] = _fill(t, lg)
        for rep in range(1, ROUNDS + 1):
            order = list(by_policy.items()) if rep % 2 else list(reversed(by_policy.items()))
            for i, (factor, theta) in enumerate(configs):
                stream = rep * 100 + i  # the same keys for both policies, new ones every round
                for policy, t in order:
                    fkey = f"admission/{policy}/{factor}x/{theta}"
                    if fkey in failures:
                        continue
                    one, commands["run"] = _one_run(t, lg, factor, theta, rep, stream)
                    record_run(runs[(policy, factor, theta)], one, args,
                               _describe(f"{policy} {factor}x theta {theta} run {rep}"), failures, fkey,
                               f"admission section, {policy}, {factor}x, theta {theta}, run {rep}")
    except BenchError as e:
        log(f"FAILED the admission section: {e}")
        failures["admission"] = f"admission section: {e}"
    finally:
        procs.stop([p for t in targets for p in t.processes()])
    medians = {}
    for k, v in runs.items():
        if v:
            m = sections.median_of(v)
            for extra in ("skip_ratio", "evictions_per_get", "cpu_us"):
                m[extra] = statistics.median(r[extra] for r in v)
            medians[k] = m
    return {"targets": targets, "runs": runs, "commands": commands, "medians": medians}


def paired(result, policy, factor, theta, metric):
    """`policy` ÷ all of `metric` per round (the runs of a round are adjacent)."""
    a = {r["rep"]: r for r in result["runs"].get(("all", factor, theta), [])}
    f = {r["rep"]: r for r in result["runs"].get((policy, factor, theta), [])}
    return [f[rep][metric] / a[rep][metric] for rep in sorted(a) if rep in f and a[rep][metric]]


def table(result):
    rows = ["| working set | theta | policy | gets/s | same-round gets/s ÷ all | L1 hit ratio "
            "| backfills per get | skipped per get | L1 evictions per get | rend CPU µs/get "
            "| rend-l2 CPU µs/get | rend + rend-l2 CPU µs/get |",
            "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    meds = result["medians"]
    for factor in FACTORS:
        for theta in THETAS:
            for policy in POLICIES:
                m = meds.get((policy, factor, theta))
                where = f"{factor}x L1 ({keys_for(factor):,} keys)"
                if m is None:
                    rows.append(f"| {where} | {theta} | {describe(policy)} | FAILED | | | | | | | | |")
                    continue
                ratios = paired(result, policy, factor, theta, "ops_per_s") if policy != "all" else []
                ratio = (f"{statistics.median(ratios):.2f}× ({min(ratios):.2f}–{max(ratios):.2f})"
                         if ratios else "—")
                rows.append(f"| {where} | {theta} | {describe(policy)} | {m['ops_per_s']:,.0f} | {ratio} "
                            f"| {100 * m['l1_hit_ratio']:.1f}% | {m['backfill_ratio']:.3f} | {m['skip_ratio']:.3f} "
                            f"| {m['evictions_per_get']:.3f} | {m['proxy_us']:.2f} | {m['l2_us']:.2f} "
                            f"| {m['cpu_us']:.2f} |")
    return "\n".join(rows)


def render(result):
    head = "## Backfill admission: all vs frequency, L1 much smaller than the working set"
    if not result or not result["medians"]:
        return head + "\n\nNot measured (see Skipped / failed).\n"
    return f"""{head}

How measured: a fresh rend l1l2 (workers=1, L1 memcached -m {L1_MB}) per policy
({"; ".join(describe(p) for p in POLICIES)}); each L2 filled
once through the batch port (`{result['commands'].get('fill')}`, L1 stays empty). Per working set
(4x and 8x L1's memory: the first {keys_for(4):,} or all {keys_for(8):,} keys), theta and round: a
{WARM_S} s warm-up (not measured) and then `{result['commands'].get('run')}`, the two policies
adjacent with the same key sequence, {ROUNDS} rounds, medians; same-round ratio: the policy's
gets/s ÷ "all"'s in the same round, median (range). L1 hit ratio from memcached's
get_hits/get_misses over the measured run; CPU per get: rend (supervisor + worker) and rend-l2
utime+stime ÷ gets.

{table(result)}
"""
