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

from procs import (BenchError, Processes, cpu_seconds_between, cpu_snapshot, flush, run_client,
                   system_busy_seconds)
from targets import all_targets
import report

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
PAUSE_BETWEEN_RUNS_S = 1.0  # let the previous run's sockets and CPU settle
NOISY_CORES = 0.15          # "other" CPU above this during a run gets a warning


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
    args = p.parse_args()
    # memcaslap splits the op count evenly over its connections and drops the
    # remainder; ask only for what it will do so the count we divide by is exact.
    per_round = THREADS * CONCURRENCY
    if args.ops < per_round or args.reps < 1:
        p.error(f"--ops must be at least {per_round} and --reps at least 1")
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
    target.check_alive()
    flush(target.backend)
    proxy_pids, mc_pids = target.proxy_pids(), [target.memcached.pid]
    proxy_before, mc_before = cpu_snapshot(proxy_pids), cpu_snapshot(mc_pids)
    busy_before, start = system_busy_seconds(), time.monotonic()
    rc, text, client_cpu = run_client(memcaslap_argv(target.address, cfg_path, ops),
                                      timeout_s, out_path)
    wall, busy = time.monotonic() - start, system_busy_seconds() - busy_before
    # Re-discover the proxy's processes: a worker that restarted mid-run
    # changes the set, and cpu_seconds_between refuses to add that up.
    proxy_after, mc_after = cpu_snapshot(target.proxy_pids()), cpu_snapshot(mc_pids)
    target.check_alive()
    if rc != 0:
        raise BenchError(f"memcaslap exited with status {rc}: " + text.strip()[-300:])
    result = parse_memcaslap(text, ops)
    proxy_s = cpu_seconds_between(proxy_before, proxy_after, target.name)
    mc_s = cpu_seconds_between(mc_before, mc_after, "memcached")
    ours = proxy_s + client_cpu + (mc_s if target.proxy is not None else 0.0)
    n = result["ops"]
    result.update(
        wall_s=wall,
        proxy_us=proxy_s / n * 1e6,
        memcached_us=mc_s / n * 1e6,
        client_us=client_cpu / n * 1e6,
        # CPU the rest of the machine used meanwhile, in cores. Kernel
        # softirq work for our own loopback traffic can land here too, so
        # a small value is normal; a large one means a noisy neighbour.
        other_cores=max(0.0, busy - ours) / wall,
    )
    return result


def wait_for_quiet(max_wait_s):
    """Wait (bounded) until the machine is idle apart from us.

    Between runs our own servers are idle, so any busy CPU is someone else's:
    a build or test suite in another shell would distort the run. Returns
    the busy cores seen last, for the log.
    """
    deadline, said = time.monotonic() + max_wait_s, False
    while True:
        before = system_busy_seconds()
        time.sleep(1.0)
        busy = system_busy_seconds() - before
        if busy <= NOISY_CORES or time.monotonic() >= deadline:
            if said:
                log(f"machine {'quiet' if busy <= NOISY_CORES else 'still busy'} "
                    f"({busy:.2f} cores in use), going on")
            return busy
        if not said:
            log(f"machine busy ({busy:.2f} cores in use by others), waiting up to {max_wait_s:.0f} s")
            said = True


def summarize(runs):
    """Median of each metric over the repetitions (each metric separately)."""
    keys = ("ops_per_s", "proxy_us", "memcached_us", "client_us", "wall_s")
    return {k: statistics.median(r[k] for r in runs) for k in keys}


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def start_targets(targets, failures):
    """Start every target; a target that cannot start is recorded, not fatal."""
    running = []
    for t in targets:
        try:
            t.start()
            t.remember_pids()
            log(f"started {t.name} on {t.address}")
            running.append(t)
        except BenchError as e:
            log(f"FAILED to start {t.name}: {e}")
            failures[t.key] = str(e)
    return running


def run_all(running, args, cfg_path, failures):
    """Warm up each target once, then measure in interleaved rounds
    (A B C D, A B C D, ...) so slow drift on the machine (thermal, other
    tenants) spreads over all targets instead of penalising one."""
    runs = {t.key: [] for t in running}
    for t in running:
        try:
            measure_once(t, cfg_path, WARMUP_OPS, args.run_timeout,
                         os.path.join(t.dir, "warmup.out"))
        except BenchError as e:
            log(f"FAILED warm-up of {t.name}: {e}")
            failures[t.key] = f"warm-up: {e}"
    for rep in range(1, args.reps + 1):
        for t in running:
            if t.key in failures:
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
    else on the machine took CPU meanwhile. The last attempt is kept either
    way, and its "other CPU" is in the report."""
    for attempt in range(args.retries + 1):
        time.sleep(PAUSE_BETWEEN_RUNS_S)
        if args.quiet_wait > 0:
            wait_for_quiet(args.quiet_wait)
        r = measure_once(t, cfg_path, args.ops, args.run_timeout,
                         os.path.join(t.dir, f"run{rep}.out"))
        r["rep"], r["attempts"] = rep, attempt + 1
        log(f"{t.name:24s} run {rep}: {r['ops_per_s']:>7} ops/s  proxy {r['proxy_us']:6.2f} us/req  "
            f"memcached {r['memcached_us']:6.2f} us/req  memcaslap {r['client_us']:6.2f} us/req  "
            f"other {r['other_cores']:.2f} cores")
        if r["other_cores"] <= NOISY_CORES:
            break
        again = "retrying" if attempt < args.retries else "keeping it (no retries left)"
        log(f"warning: something else used {r['other_cores']:.2f} cores during that run; {again}")
    return r


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
    cfg_path = os.path.join(args.work_dir, "memcaslap.cfg")
    with open(cfg_path, "w") as f:
        f.write(LOAD_CFG)

    procs = Processes(os.path.join(args.work_dir, "pids"))
    targets = all_targets(args.work_dir, procs, os.path.abspath(args.build_dir))
    skipped = []
    if args.targets:
        wanted = set(args.targets.split(","))
        skipped += [f"{t.name}: not in BENCH_TARGETS" for t in targets if t.key not in wanted]
        targets = [t for t in targets if t.key in wanted]

    env = report.environment(args.build_dir)  # before any load: records the idle load average
    failures = {}
    try:
        running = start_targets(targets, failures)
        runs = run_all(running, args, cfg_path, failures)
    finally:
        log("stopping servers")
        procs.stop_all()

    summaries = {t.key: summarize(runs[t.key]) for t in targets
                 if t.key not in failures and runs.get(t.key)}
    command = " ".join(memcaslap_argv("127.0.0.1:<port>", "memcaslap.cfg", args.ops))
    text = report.render(env, targets, summaries, runs, failures, skipped, command, LOAD_CFG,
                         args, WARMUP_OPS, NOISY_CORES)
    path = report.write(args.results_dir, text)
    print()
    print(report.table(targets, summaries, failures))
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
