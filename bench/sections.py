"""The rend-loadgen parts of `make bench`, after the memcaslap rounds:

- loadgen_bench: rend-loadgen's fixed `bench` profile against the baseline
  targets (ops/s, latency percentiles, and the load generator's own CPU
  per request next to memcaslap's);
- l2_hit_path: reads that miss L1 and hit L2 (batch port: never backfilled),
  the main port with a cold L1 (the first read of a key backfills it), and
  the main port with every key in L1 (reference);
- extstore_vs_rend: memcached's own flash tier against rend l1l2 with the
  same RAM, on a working set 8x that RAM: hit ratio and ops/s.

Each function records what failed in `failures` (the bench then exits 1)
and what could not be measured in `skipped`, and never raises BenchError.
"""

import os
import statistics
import time

import loadgen
from measure import once_quiet, undisturbed
from procs import BenchError, Skip, flush, log, server_stats, stats_delta
from targets import DEFAULT_MEMORY_MB, DirectMemcached, Extstore, Nutcracker, Rend

# Targets the loadgen `bench` profile runs against (those that are running).
LOADGEN_KEYS = ("memcached", "nutcracker", "rend-w1", "rend-w2", "rend-l1l2")

L1_STATS = ("cmd_get", "get_hits", "get_misses", "cmd_set", "evictions")
REND_STATS = ("cmd_get", "get_hits", "get_misses", "backfills", "l2_requests", "l1_requests",
              "l2_errors", "l1_errors")
EXT_STATS = ("evictions", "curr_items", "total_items", "extstore_objects_written",
             "extstore_objects_evicted", "extstore_objects_read", "extstore_objects_used",
             "extstore_bytes_written", "extstore_bytes_used", "extstore_page_evictions",
             "extstore_pages_used", "extstore_pages_free", "extstore_compact_lost",
             "get_extstore", "miss_from_extstore", "get_aborted_extstore", "get_oom_extstore",
             "badcrc_from_extstore", "get_hits", "get_misses", "cmd_get", "slabs_moved")

MEDIAN_KEYS = ("ops_per_s", "p50", "p90", "p99", "p99_9", "max", "mean", "loadgen_us",
               "proxy_us", "memcached_us", "l2_us", "hit_ratio", "l1_hit_ratio", "backfill_ratio")


def median_of(runs):
    """Median of each metric over repetitions (each metric separately)."""
    out = {}
    for k in MEDIAN_KEYS:
        values = [r[k] for r in runs if r.get(k) is not None]
        if values:
            out[k] = statistics.median(values)
    return out


def _describe(label):
    def line(r):
        hit = f"  hits {100 * r['hit_ratio']:.1f}%" if r.get("hit_ratio") is not None else ""
        return (f"{label:40s} {r['ops_per_s']:>9,.0f} ops/s  p50 {r['p50']:7.1f}  p99 {r['p99']:7.1f}  "
                f"p99.9 {r['p99_9']:7.1f} us  loadgen {r['loadgen_us']:5.2f} us/req{hit}  "
                f"other {r['other_cores']:.2f} cores")
    return line


def _hit_ratio(r):
    r["hit_ratio"] = r["hits"] / r["gets"] if r["gets"] else None
    return r


# --------------------------------------------------------------------------
# 4. rend-loadgen's bench profile against the baseline targets

def loadgen_bench(running, args, lg, failures):
    """Interleaved rounds of `rend-loadgen -w bench` (args.reps each)."""
    targets = [t for t in running if t.key in LOADGEN_KEYS and t.key not in failures]
    runs = {t.key: [] for t in targets}
    command = None
    for rep in range(1, args.reps + 1):
        for t in targets:
            fkey = f"loadgen/{t.key}"
            if fkey in failures:
                continue
            cmd = loadgen.argv(lg, t.address, "-w", "bench", "-d", args.loadgen_seconds)
            command = loadgen.shown(cmd)

            def one(t=t, cmd=cmd, rep=rep):
                flush(t.backend)  # same start as the memcaslap runs: empty memcached
                r = loadgen.run(t, cmd, args.loadgen_seconds + 120,
                                os.path.join(t.dir, f"loadgen-bench{rep}.out"))
                r["rep"] = rep
                return _hit_ratio(r)
            try:
                runs[t.key].append(undisturbed(one, args, _describe(f"loadgen bench {t.name} run {rep}")))
            except BenchError as e:
                log(f"FAILED rend-loadgen bench against {t.name} run {rep}: {e}")
                failures[fkey] = f"rend-loadgen bench against {t.name}, run {rep}: {e}"
    return {"targets": targets, "runs": runs,
            "medians": {k: median_of(v) for k, v in runs.items() if v}, "command": command}


# --------------------------------------------------------------------------
# 2b. the L1-miss / L2-hit path

def l2_hit_path(t, args, lg, failures):
    """On the running rend l1l2 target `t`: load N keys into L2 only, then
    read them back through the batch port (every read an L1 miss and an L2
    hit), through the main port from a cold L1 (backfills), and through the
    main port with every key in L1."""
    n, secs = args.l2_keys, args.loadgen_seconds
    out = {"keys": n, "runs": {"batch": [], "cold": [], "warm": []}, "commands": {}}
    read_opts = ("-w", "mix", "--get-ratio", "1.0", "--no-preload", "--key-space", n, "-d", secs)
    try:
        # Load through the batch port into an empty L1: the batch port writes
        # L2 and only refreshes keys L1 already holds, so L1 stays empty.
        flush(t.backend)
        cmd = loadgen.argv(lg, t.batch_address, "-w", "fill", "--key-space", n)
        out["commands"]["load"] = loadgen.shown(cmd)
        once_quiet(args)
        l1_before = server_stats(t.backend)
        out["load"] = loadgen.run(t, cmd, 600, os.path.join(t.dir, "l2-load.out"))
        l1_after = server_stats(t.backend)
        out["load_l1"] = stats_delta(l1_before, l1_after, L1_STATS)
        out["load_l1"]["curr_items"] = int(l1_after.get("curr_items", -1))
        log(f"loaded {n} keys through the batch port: {out['load']['ops_per_s']:,.0f} sets/s, "
            f"L1 items afterwards: {out['load_l1']['curr_items']}")

        def read(mode, address, rep, flush_first):
            cmd = loadgen.argv(lg, address, *read_opts)
            out["commands"][mode] = loadgen.shown(cmd)

            def one():
                if flush_first:
                    flush(t.backend)
                l1_b, rend_b = server_stats(t.backend), server_stats(t.address)
                r = loadgen.run(t, cmd, secs + 120, os.path.join(t.dir, f"l2-{mode}{rep}.out"))
                l1_a, rend_a = server_stats(t.backend), server_stats(t.address)
                r["l1"] = stats_delta(l1_b, l1_a, L1_STATS)
                r["rend"] = stats_delta(rend_b, rend_a, REND_STATS)
                r["rep"] = rep
                l1_gets = r["l1"].get("cmd_get") or 0
                r["l1_hit_ratio"] = r["l1"].get("get_hits", 0) / l1_gets if l1_gets else None
                r["backfill_ratio"] = (r["rend"].get("backfills", 0) / r["gets"]) if r["gets"] else None
                return _hit_ratio(r)
            return undisturbed(one, args, _describe(f"L2 path {mode} run {rep}"))

        for rep in range(1, args.reps + 1):
            out["runs"]["batch"].append(read("batch", t.batch_address, rep, True))
            out["runs"]["cold"].append(read("cold", t.address, rep, True))
        # Reference: the same reads with every key in L1 (a fill through the
        # main port writes L2 and L1), not flushed between runs.
        cmd = loadgen.argv(lg, t.address, "-w", "fill", "--key-space", n)
        out["commands"]["warm-fill"] = loadgen.shown(cmd)
        flush(t.backend)
        loadgen.run(t, cmd, 600, os.path.join(t.dir, "l2-warm-fill.out"))
        for rep in range(1, args.reps + 1):
            out["runs"]["warm"].append(read("warm", t.address, rep, False))
    except BenchError as e:
        log(f"FAILED the L2-hit path section: {e}")
        failures["l2-hit"] = f"L2-hit path: {e}"
    out["medians"] = {k: median_of(v) for k, v in out["runs"].items() if v}
    return out


# --------------------------------------------------------------------------
# 3. memcached extstore vs rend l1l2, working set 8x the RAM

def extstore_vs_rend(workdir, procs, build_dir, args, lg, failures, skipped):
    n, size = args.ext_keys, args.ext_value
    reads = args.ext_reads or 2 * n
    fill_opts = ("-w", "fill", "--key-space", n, "--value-size", size)
    read_opts = ("-w", "mix", "--get-ratio", "1.0", "--no-preload", "--key-space", n,
                 "--value-size", size, "-n", reads)
    flash_bytes = args.ext_flash_mb << 20
    targets = [
        Extstore(workdir, procs, args.ext_ram_mb, args.ext_flash_mb),
        Extstore(workdir, procs, args.ext_ram_mb, args.ext_flash_mb, tuned=True),
        Rend(workdir, procs, build_dir, workers=1, l2=True, memory_mb=args.ext_ram_mb,
             l2_settings={"max_bytes": flash_bytes, "block_cache_mb": args.ext_ram_mb},
             key="rend-l1l2-ext",
             name=f"rend l1l2, workers=1, L1 memcached -m {args.ext_ram_mb}, "
                  f"L2 budget {args.ext_flash_mb} MiB"),
        # References with the whole working set in RAM (memcached -m 1024): what
        # memcached serves direct, and what the proxy hop alone leaves of it.
        DirectMemcached(workdir, procs, key="ram-memcached",
                        name=f"reference: memcached -m {DEFAULT_MEMORY_MB}, every key in RAM"),
        Nutcracker(workdir, procs, key="ram-nutcracker",
                   name=f"reference: nutcracker → memcached -m {DEFAULT_MEMORY_MB}, every key in RAM"),
        Rend(workdir, procs, build_dir, workers=1, key="ram-rend-l1only",
             name=f"reference: rend l1only, workers=1 → memcached -m {DEFAULT_MEMORY_MB}, "
                  "every key in RAM"),
    ]
    targets[2].short = f"rend l1l2, L1 -m {args.ext_ram_mb}"
    for t, short in zip(targets[3:], ("memcached, all in RAM", "nutcracker, all in RAM",
                                       "rend l1only, all in RAM")):
        t.short = short
    out = {"keys": n, "value": size, "reads": reads, "results": {}, "targets": targets,
           "commands": {"fill": "rend-loadgen --port <port> -t 1 -c 32 " + " ".join(map(str, fill_opts)),
                        "read": "rend-loadgen --port <port> -t 1 -c 32 " + " ".join(map(str, read_opts))}}
    for t in targets:
        res = {}
        try:
            t.start()
            t.remember_pids()
            log(f"started {t.name} on {t.address}")
            once_quiet(args)
            mc0 = server_stats(t.backend)
            pace = ("--rate", t.fill_rate) if getattr(t, "fill_rate", None) else ()
            res["fill"] = loadgen.run(t, loadgen.argv(lg, t.address, *fill_opts, *pace), 900,
                                      os.path.join(t.dir, "fill.out"))
            mc1 = server_stats(t.backend)
            # rend with L2 reports its backfills; the other proxies have no stats of their own.
            rend1 = server_stats(t.address) if getattr(t, "l2", False) else None
            log(f"{t.name}: filled {n} x {size} B at {res['fill']['ops_per_s']:,.0f} sets/s")
            once_quiet(args)
            res["read"] = _hit_ratio(loadgen.run(t, loadgen.argv(lg, t.address, *read_opts), 900,
                                                 os.path.join(t.dir, "read.out")))
            mc2 = server_stats(t.backend)
            res["after_fill"] = {k: int(mc1[k]) for k in EXT_STATS if k in mc1 and mc1[k].isdigit()}
            res["fill_delta"] = stats_delta(mc0, mc1, EXT_STATS)
            res["read_delta"] = stats_delta(mc1, mc2, EXT_STATS)
            if rend1 is not None:
                res["rend_read"] = stats_delta(rend1, server_stats(t.address), REND_STATS)
            log(_describe(f"{t.name} read")(res["read"] | {"other_cores": res["read"]["other_cores"]}))
        except Skip as e:
            log(f"skipped {t.name}: {e}")
            skipped.append(f"{t.name}: {e}")
            res["skipped"] = str(e)
        except BenchError as e:
            log(f"FAILED {t.name}: {e}")
            failures[f"extstore/{t.key}"] = f"{t.name}: {e}"
            res["failed"] = str(e)
        finally:
            procs.stop(t.processes())
            time.sleep(0.5)
        out["results"][t.key] = res
    return out


# --------------------------------------------------------------------------
# 2a, split by command: where L2 costs on the main port

SPLIT_KEYS = ("rend-w1", "rend-l1l2")


def l1hit_split(running, args, lg, failures):
    """rend l1only vs rend l1l2 (workers=1 both) under get-only and set-only
    rend-loadgen loads over 10000 keys, so the memcaslap mix can be split
    into its L1-hit gets and its sets. Get-only runs read keys a
    (not measured) fill through the main port put in L1."""
    targets = [t for t in running if t.key in SPLIT_KEYS and t.key not in failures]
    if len(targets) < len(SPLIT_KEYS):
        return None
    keys = 10000
    runs = {(t.key, mode): [] for t in targets for mode in ("get", "set")}
    commands = {}
    for rep in range(1, args.reps + 1):
        for mode, ratio in (("get", "1.0"), ("set", "0.0")):
            for t in targets:
                fkey = f"split/{t.key}/{mode}"
                if fkey in failures:
                    continue
                cmd = loadgen.argv(lg, t.address, "-w", "mix", "--get-ratio", ratio, "--no-preload",
                                   "--key-space", keys, "-d", args.loadgen_seconds)
                fill = loadgen.argv(lg, t.address, "-w", "fill", "--key-space", keys)
                commands[mode] = loadgen.shown(cmd)
                commands["fill"] = loadgen.shown(fill)

                def one(t=t, cmd=cmd, fill=fill, mode=mode, rep=rep):
                    flush(t.backend)
                    if mode == "get":
                        loadgen.run(t, fill, 300, os.path.join(t.dir, f"split-fill{rep}.out"))
                    r = loadgen.run(t, cmd, args.loadgen_seconds + 120,
                                    os.path.join(t.dir, f"split-{mode}{rep}.out"))
                    r["rep"] = rep
                    return _hit_ratio(r)
                try:
                    runs[(t.key, mode)].append(
                        undisturbed(one, args, _describe(f"{mode}-only {t.name} run {rep}")))
                except BenchError as e:
                    log(f"FAILED {mode}-only run against {t.name}: {e}")
                    failures[fkey] = f"{mode}-only rend-loadgen run against {t.name}: {e}"
    return {"targets": targets, "keys": keys, "runs": runs, "commands": commands,
            "medians": {k: median_of(v) for k, v in runs.items() if v}}
