#!/usr/bin/python3
"""rend throughput/CPU benchmark against memcached and nutcracker.

Started by bench/run.sh (which owns the temp dir and the last-resort
cleanup); see bench/README.md. Exit status: 0 when every target ran,
1 when any target failed, 2 on a usage/environment error.
"""

import argparse
import os
import re
import signal
import statistics
import sys
import time

from measure import NOISY_CORES, bracketed, undisturbed
from procs import BenchError, Processes, Skip, flush, log, start_targets
from targets import BASELINE_KEYS, all_targets
import loadgen
import admission
import floor
import chunked
import meta
import instructions
import plot
import report
import sections

# memcaslap load: 1 thread, 32 connections, 90% get / 10% set, 32-byte keys,
# 100-byte values. memcaslap only gets keys it has already set in the same
# run, so gets hit without a separate preload (the run checks get_misses).
LOAD_CFG = """key
32 32 1
value
100 100 1
cmd
0 0.1
1 0.9
"""
THREADS, CONCURRENCY = 1, 32
WARMUP_OPS = 20000          # one unmeasured run per target (connections, slabs); a multiple of 32
SECTIONS = ("metrics-ir", "loadgen", "l2hit", "extstore", "floor", "chunked", "meta", "admission", "plot")  # the parts after the memcaslap rounds


def parse_args():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--build-dir", required=True)
    p.add_argument("--work-dir", required=True, help="temp dir for sockets, configs, logs")
    p.add_argument("--results-dir", required=True)
    p.add_argument("--ops", type=int, default=int(os.environ.get("BENCH_OPS", 500000)),
                   help="operations per measured run (env BENCH_OPS)")
    p.add_argument("--reps", type=int, default=int(os.environ.get("BENCH_REPS", 3)),
                   help="measured runs per target; the median is reported (env BENCH_REPS)")
    p.add_argument("--run-timeout", type=float,
                   default=float(os.environ.get("BENCH_RUN_TIMEOUT", 180)),
                   help="hard limit per memcaslap run, seconds (env BENCH_RUN_TIMEOUT)")
    p.add_argument("--quiet-wait", type=float,
                   default=float(os.environ.get("BENCH_QUIET_WAIT", 120)),
                   help="before each run, wait up to this many seconds for other CPU use "
                        "to drop (env BENCH_QUIET_WAIT; 0 = don't wait)")
    p.add_argument("--retries", type=int, default=int(os.environ.get("BENCH_RETRIES", 2)),
                   help="redo a run disturbed by other CPU use up to this many times "
                        "(env BENCH_RETRIES)")
    p.add_argument("--targets", default=os.environ.get("BENCH_TARGETS", ""),
                   help="comma list of target keys to run (default all; env BENCH_TARGETS)")
    p.add_argument("--sections", default=os.environ.get("BENCH_SECTIONS", ",".join(SECTIONS)),
                   help="comma list of the parts after the memcaslap rounds to run: "
                        f"{','.join(SECTIONS)} (default all; env BENCH_SECTIONS)")
    p.add_argument("--metrics-reps", type=int,
                   default=int(os.environ.get("BENCH_METRICS_REPS", 7)),
                   help="measured runs of rend-w1 with metrics on and off (env BENCH_METRICS_REPS)")
    p.add_argument("--ir-ops", type=int, default=int(os.environ.get("BENCH_IR_OPS", 40000)),
                   help="metrics-ir: requests in the long callgrind window; the short one is a "
                        "quarter of it (env BENCH_IR_OPS)")
    p.add_argument("--ir-rounds", type=int, default=int(os.environ.get("BENCH_IR_ROUNDS", 5)),
                   help="metrics-ir: rounds, each with a fresh instance of each (env BENCH_IR_ROUNDS)")
    p.add_argument("--loadgen-seconds", type=float,
                   default=float(os.environ.get("BENCH_LOADGEN_SECONDS", 5)),
                   help="length of each measured rend-loadgen run (env BENCH_LOADGEN_SECONDS)")
    p.add_argument("--l2-keys", type=int, default=int(os.environ.get("BENCH_L2_KEYS", 100000)),
                   help="keys loaded into L2 for the L2-hit path (env BENCH_L2_KEYS)")
    p.add_argument("--ext-keys", type=int, default=int(os.environ.get("BENCH_EXT_KEYS", 131072)),
                   help="working set of the extstore comparison, keys (env BENCH_EXT_KEYS)")
    p.add_argument("--ext-value", type=int, default=int(os.environ.get("BENCH_EXT_VALUE", 4096)),
                   help="value bytes of the extstore comparison (env BENCH_EXT_VALUE)")
    p.add_argument("--ext-ram-mb", type=int, default=int(os.environ.get("BENCH_EXT_RAM_MB", 64)),
                   help="memcached -m of extstore and of rend's L1 (env BENCH_EXT_RAM_MB)")
    p.add_argument("--ext-flash-mb", type=int,
                   default=int(os.environ.get("BENCH_EXT_FLASH_MB", 1024)),
                   help="extstore file size and rend's l2.max_bytes, MiB (env BENCH_EXT_FLASH_MB)")
    p.add_argument("--ext-reads", type=int, default=int(os.environ.get("BENCH_EXT_READS", 0)),
                   help="uniform random gets after the fill (default 2x the keys; env BENCH_EXT_READS)")
    args = p.parse_args()
    args.sections = {x for x in args.sections.split(",") if x}
    unknown = args.sections - set(SECTIONS)
    if unknown:
        p.error(f"unknown sections {sorted(unknown)}; known: {','.join(SECTIONS)}")
    args.metrics_reps = max(args.metrics_reps, args.reps)
    # memcaslap splits the op count evenly over its connections and drops the
    # remainder; ask only for what it will do so the count we divide by is exact.
    per_round = THREADS * CONCURRENCY
    if args.ops < per_round or args.reps < 1:
        p.error(f"--ops must be at least {per_round} and --reps at least 1")
    if args.ir_ops < 8 or args.ir_rounds < 1:
        p.error("--ir-ops must be at least 8 and --ir-rounds at least 1")
    args.ops -= args.ops % per_round
    return args


def memcaslap_argv(address, cfg_path, ops):
    return ["memcaslap", "-s", address, "-T", str(THREADS), "-c", str(CONCURRENCY),
            "-F", cfg_path, "-x", str(ops)]


def parse_memcaslap(text, expected_ops):
    """Throughput and misses from memcaslap's final summary.

    The summary line looks like "Run time: 4.2s Ops: 200000 TPS: 47473 ...".
    Every op must have completed, otherwise the op count we divide CPU by is wrong.
    """
    runs = re.findall(r"Run time: ([\d.]+)s Ops: (\d+) TPS: (\d+)", text)
    if not runs:
        raise BenchError("memcaslap printed no summary: " + text.strip()[-300:])
    _, ops, tps = runs[-1]
    ops, tps = int(ops), int(tps)
    if ops != expected_ops:
        raise BenchError(f"memcaslap completed {ops} ops, expected {expected_ops}")
    misses = re.findall(r"get_misses: (\d+)", text)
    return {"ops": ops, "ops_per_s": tps, "get_misses": int(misses[-1]) if misses else None}


def measure_once(target, cfg_path, ops, timeout_s, out_path):
    """One memcaslap run with the proxy's and memcached's CPU read around it."""
    flush(target.backend)
    b = bracketed(target, memcaslap_argv(target.address, cfg_path, ops), timeout_s, out_path)
    if b["rc"] != 0:
        raise BenchError(f"memcaslap exited with status {b['rc']}: " + b["text"].strip()[-300:])
    result = parse_memcaslap(b["text"], ops)
    n = result["ops"]
    result.update(
        wall_s=b["wall_s"],
        proxy_us=b["proxy_s"] / n * 1e6,
        memcached_us=b["memcached_s"] / n * 1e6,
        l2_us=b["l2_s"] / n * 1e6,
        client_us=b["client_s"] / n * 1e6,
        other_cores=b["other_cores"],
    )
    return result


def summarize(runs):
    """Median of each metric over the repetitions (each metric separately)."""
    keys = ("ops_per_s", "proxy_us", "memcached_us", "l2_us", "client_us", "wall_s")
    return {k: statistics.median(r[k] for r in runs) for k in keys}


def run_all(running, args, cfg_path, failures):
    """Warm up each target once, then measure in interleaved rounds whose
    order alternates (A B C D, D C B A, ...) so slow drift on the machine
    (thermal, other tenants) spreads over all targets instead of penalising
    one, and no target is always first or always right after another."""
    runs = {t.key: [] for t in running}
    for t in running:
        try:
            measure_once(t, cfg_path, WARMUP_OPS, args.run_timeout,
                         os.path.join(t.dir, "warmup.out"))
        except BenchError as e:
            log(f"FAILED warm-up of {t.name}: {e}")
            failures[t.key] = f"warm-up: {e}"
    # Targets with more repetitions (the metrics on/off pair) go on alone,
    # still interleaved with each other, after the common rounds.
    for rep in range(1, max((t.reps or args.reps) for t in running) + 1 if running else 1):
        for t in (running if rep % 2 else list(reversed(running))):
            if t.key in failures or rep > (t.reps or args.reps):
                continue
            try:
                r = measure_undisturbed(t, cfg_path, args, rep)
            except BenchError as e:
                log(f"FAILED {t.name} run {rep}: {e}")
                failures[t.key] = f"run {rep}: {e}"
                continue
            runs[t.key].append(r)
    return runs


def measure_undisturbed(t, cfg_path, args, rep):
    """One measured run; redone (up to args.retries times) when something
    else on the machine took CPU meanwhile (see measure.undisturbed)."""
    def one():
        r = measure_once(t, cfg_path, args.ops, args.run_timeout,
                         os.path.join(t.dir, f"run{rep}.out"))
        r["rep"] = rep
        return r

    def line(r):
        l2 = f"  rend-l2 {r['l2_us']:6.2f} us/req" if t.l2_pids() else ""
        return (f"{t.name:24s} run {rep}: {r['ops_per_s']:>7} ops/s  proxy {r['proxy_us']:6.2f} us/req  "
                f"memcached {r['memcached_us']:6.2f} us/req{l2}  memcaslap {r['client_us']:6.2f} us/req  "
                f"other {r['other_cores']:.2f} cores")
    return undisturbed(one, args, line)


def install_signal_handlers():
    """Turn SIGTERM/SIGHUP into an exception so the `finally` that stops the
    servers runs (SIGINT already raises KeyboardInterrupt)."""
    def stop(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, stop)


def main():
    args = parse_args()
    install_signal_handlers()
    os.makedirs(args.results_dir, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    cfg_path = os.path.join(args.work_dir, "memcaslap.cfg")
    with open(cfg_path, "w") as f:
        f.write(LOAD_CFG)

    procs = Processes(os.path.join(args.work_dir, "pids"))
    build_dir = os.path.abspath(args.build_dir)
    targets = all_targets(args.work_dir, procs, build_dir, args.metrics_reps)
    skipped = []
    if args.targets:
        wanted = set(args.targets.split(","))
        skipped += [f"{t.name}: not in BENCH_TARGETS" for t in targets if t.key not in wanted]
        targets = [t for t in targets if t.key in wanted]
    for name in SECTIONS:
        if name not in args.sections:
            skipped.append(f"section {name}: not in BENCH_SECTIONS")
    lg = loadgen.binary(build_dir)
    if lg is None and args.sections & {"metrics-ir", "loadgen", "l2hit", "extstore", "floor", "chunked", "meta", "admission"}:
        skipped.append(f"rend-loadgen sections (metrics-ir, loadgen, l2hit, extstore, floor, chunked, meta, admission): "
                       f"{build_dir}/loadgen/rend-loadgen is missing (build the rend-loadgen target)")

    env = report.environment(args.build_dir)  # before any load: records the idle load average
    failures = {}
    extra = {"stamp": stamp}
    try:
        running = start_targets(targets, failures, skipped)
        runs = run_all(running, args, cfg_path, failures)
        by_key = {t.key: t for t in running}
        w1 = by_key.get("rend-w1")
        if w1 is not None and "rend-w1" not in failures:
            extra["w1_cpu_split"] = instructions.worker_cpu_split(w1)
        if lg and "loadgen" in args.sections:
            log("rend-loadgen bench profile against the baseline targets")
            extra["loadgen"] = sections.loadgen_bench(running, args, lg, failures)
        if lg and "l2hit" in args.sections:
            log("get-only and set-only loads: rend l1only vs rend l1l2")
            extra["split"] = sections.l1hit_split(running, args, lg, failures)
            l1l2 = by_key.get("rend-l1l2")
            if l1l2 is None or "rend-l1l2" in failures:
                skipped.append("L2-hit path: the rend l1l2 target is not running "
                               f"({getattr(l1l2, 'skipped', None) or failures.get('rend-l1l2') or 'not in BENCH_TARGETS'})")
            else:
                log(f"L2-hit path: {args.l2_keys} keys")
                extra["l2hit"] = sections.l2_hit_path(l1l2, args, lg, failures)
        # The memcaslap targets are done: stop them (and rend-l2's background
        # work) before the extstore comparison starts its own servers.
        log("stopping servers")
        procs.stop_all()
        if lg and "metrics-ir" in args.sections:
            log(f"metrics cost in instructions: rend-w1 with metrics on and off under callgrind, "
                f"windows of {args.ir_ops // 4} and {args.ir_ops} requests, {args.ir_rounds} rounds")
            extra["metrics_ir"] = instructions.metrics_instructions(args.work_dir, procs, build_dir, args,
                                                                    lg, failures, skipped)
        if lg and "extstore" in args.sections:
            log(f"extstore vs rend: {args.ext_keys} keys x {args.ext_value} B, "
                f"{args.ext_ram_mb} MiB RAM, {args.ext_flash_mb} MiB flash")
            extra["extstore"] = sections.extstore_vs_rend(args.work_dir, procs, build_dir, args, lg,
                                                          failures, skipped)
        if lg and "floor" in args.sections:
            log("the L2 hop's floor: rend l1only, rend l1l2 and rend l1l2 with memcached as its L2")
            extra["floor"] = floor.measure(args.work_dir, procs, build_dir, args, lg, failures, skipped)
        if lg and "chunked" in args.sections:
            log(f"chunked L1: plain vs l1.chunk_size {', '.join(map(str, chunked.CHUNK_SIZES))}, "
                f"values of {', '.join(map(str, chunked.VALUE_SIZES))} bytes")
            extra["chunked"] = chunked.measure(args.work_dir, procs, build_dir, args, lg, failures, skipped)
        if lg and "meta" in args.sections:
            log("meta protocol: text vs meta against memcached, rend l1only and rend l1l2")
            extra["meta"] = meta.measure(args.work_dir, procs, build_dir, args, lg, failures, skipped)
        if lg and "admission" in args.sections:
            log(f"backfill admission: all vs frequency, L1 -m {admission.L1_MB}, working sets "
                f"{', '.join(f'{f}x' for f in admission.FACTORS)}, Zipf theta {', '.join(map(str, admission.THETAS))}")
            extra["admission"] = admission.measure(args.work_dir, procs, build_dir, args, lg, failures, skipped)
    finally:
        log("stopping servers")
        procs.stop_all()

    summaries = {t.key: summarize(runs[t.key]) for t in targets
                 if t.key not in failures and runs.get(t.key)}
    if "plot" in args.sections:
        try:
            extra["plot"] = plot.latency_png(args.results_dir, stamp, extra, args.work_dir)
        except Skip as e:
            log(f"skipped the latency plot: {e}")
            skipped.append(f"latency plot: {e}")
        except BenchError as e:
            log(f"FAILED the latency plot: {e}")
            failures["plot"] = f"latency plot: {e}"
    command = " ".join(memcaslap_argv("127.0.0.1:<port>", "memcaslap.cfg", args.ops))
    text = report.render(env, targets, summaries, runs, failures, skipped, command, LOAD_CFG,
                         args, WARMUP_OPS, NOISY_CORES, extra)
    path = report.write(args.results_dir, text, stamp)
    print()
    print(report.table([t for t in targets if t.key in BASELINE_KEYS], summaries, failures))
    print()
    if extra.get("meta") and extra["meta"]["medians"]:
        print(meta.table(extra["meta"]))
        print()
    if extra.get("admission") and extra["admission"]["medians"]:
        print(admission.table(extra["admission"]))
        print()
    log(f"report: {path}")
    if failures:
        log("some targets failed: " + "; ".join(f"{k}: {v}" for k, v in failures.items()))
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt as e:
        print(f"[bench] interrupted ({e or 'Ctrl-C'}); servers stopped", file=sys.stderr)
        sys.exit(130)
