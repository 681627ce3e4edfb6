"""Running one client against one target with its CPU accounted, and
keeping runs that something else on the machine disturbed out of the numbers.

Shared by the memcaslap rounds (bench.py) and the rend-loadgen sections
(sections.py).
"""

import time

from procs import BenchError, cpu_seconds_between, cpu_snapshot, log, run_client, system_busy_seconds

PAUSE_BETWEEN_RUNS_S = 1.0  # let the previous run's sockets and CPU settle
NOISY_CORES = 0.15          # "other" CPU above this during a run gets a warning (and a retry)


def bracketed(target, argv, timeout_s, out_path):
    """Run a client to completion with the target's CPU read around it.

    Returns {rc, text, wall_s, client_s, proxy_s, memcached_s, l2_s,
    other_cores}. proxy = the proxy's own processes (rend: supervisor +
    workers; direct memcached: memcached itself), memcached = the memcached
    behind it, l2 = rend-l2 (0 without L2). Raises if any of the target's
    processes died or restarted meanwhile.
    """
    target.check_alive()
    proxy_pids, mc_pids, l2_pids = target.proxy_pids(), [target.memcached.pid], target.l2_pids()
    proxy_before, mc_before = cpu_snapshot(proxy_pids), cpu_snapshot(mc_pids)
    l2_before = cpu_snapshot(l2_pids)
    busy_before, start = system_busy_seconds(), time.monotonic()
    rc, text, client_cpu = run_client(argv, timeout_s, out_path)
    wall, busy = time.monotonic() - start, system_busy_seconds() - busy_before
    # Re-discover the proxy's processes: a worker that restarted mid-run
    # changes the set, and cpu_seconds_between refuses to add that up.
    proxy_after, mc_after = cpu_snapshot(target.proxy_pids()), cpu_snapshot(mc_pids)
    l2_after = cpu_snapshot(target.l2_pids())
    target.check_alive()
    proxy_s = cpu_seconds_between(proxy_before, proxy_after, target.name)
    mc_s = cpu_seconds_between(mc_before, mc_after, "memcached")
    l2_s = cpu_seconds_between(l2_before, l2_after, "rend-l2")
    ours = proxy_s + client_cpu + l2_s + (mc_s if target.proxy is not None else 0.0)
    return {
        "rc": rc, "text": text, "wall_s": wall, "client_s": client_cpu,
        "proxy_s": proxy_s, "memcached_s": mc_s, "l2_s": l2_s,
        # CPU the rest of the machine used meanwhile, in cores. Kernel
        # softirq work for our own loopback traffic can land here too, so
        # a small value is normal; a large one means a noisy neighbour.
        "other_cores": max(0.0, busy - ours) / wall if wall > 0 else 0.0,
    }


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


def undisturbed(run, args, describe):
    """Call run() (one measured run, repeatable) until the machine was quiet
    during it, at most args.retries extra times. The last attempt is kept
    either way, and its "other CPU" is in the report. describe(result) is
    the log line of a run."""
    for attempt in range(args.retries + 1):
        time.sleep(PAUSE_BETWEEN_RUNS_S)
        if args.quiet_wait > 0:
            wait_for_quiet(args.quiet_wait)
        r = run()
        r["attempts"] = attempt + 1
        log(describe(r))
        if r["other_cores"] <= NOISY_CORES:
            break
        again = "retrying" if attempt < args.retries else "keeping it (no retries left)"
        log(f"warning: something else used {r['other_cores']:.2f} cores during that run; {again}")
    return r


def record_run(runs, one, args, describe, failures, fkey, what):
    """One measured run (undisturbed) appended to `runs`; a failure is logged and recorded in
    `failures` under `fkey` as `what` and its reason, and the section goes on."""
    try:
        runs.append(undisturbed(one, args, describe))
    except BenchError as e:
        log(f"FAILED {what}: {e}")
        failures[fkey] = f"{what}: {e}"


def once_quiet(args):
    """Before a run that cannot be repeated (a fill): pause and wait for quiet."""
    time.sleep(PAUSE_BETWEEN_RUNS_S)
    if args.quiet_wait > 0:
        wait_for_quiet(args.quiet_wait)


__all__ = ["BenchError", "bracketed", "wait_for_quiet", "undisturbed", "record_run", "once_quiet",
           "NOISY_CORES", "PAUSE_BETWEEN_RUNS_S"]
