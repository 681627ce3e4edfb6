#!/usr/bin/env python3
"""make soak: a mixed verifying load on rend for a set time while its processes are killed at
random, then a report of requests, failures by kind, wrong values and each process's memory.

Two stacks run side by side, each as `make run` starts it (2 workers, 2 connections per backend,
L2 on, its own memcached and rend-l2): "tiered" (l1l2 on the main port, l1l2batch on the batch
port) and "chunked" (chunked L1). Client processes (soak_client.py) use text and binary, values
of 0 bytes to 1 MiB, and check every answer against a model of what each key may hold. Every few
seconds a worker, a memcached or a rend-l2 of one stack is killed with SIGKILL.

What must hold: no wrong value ever; no lost value except a miss served by L1 alone in the seconds
after a rend-l2 was killed (rend's degraded mode: reads fall back to L1 while L2 is down); no
process dies that was not killed; memory flat apart from caches filling.
"""

import argparse
import json
import multiprocessing
import os
import random
import signal
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "support"))

from soak_client import run_client  # noqa: E402

LOST_GRACE_S = 15.0  # a miss this soon after a rend-l2 kill may be served by L1 alone


def rss_mib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


class Stack:
    def __init__(self, name, workdir, extra):
        from rendtest import Rend
        self.name = name
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir)
        config = {"l2": {"enabled": True, "data_dir": os.path.join(self.dir, "l2"), "max_bytes": 4 << 30,
                         "address": os.path.join(self.dir, "run", "rend-l2.sock")},
                  "listen": {"batch_port": 0}}
        for key, value in extra.items():
            config.setdefault(key, {}).update(value)
        self.rend = Rend(self.dir, workers=2, config=config)
        self.kills = []  # (time, role)

    def start(self):
        self.rend.start()
        self.supervisor = self.rend.proc.pid

    def roles(self):
        """{role: [pids]} of the stack's processes now."""
        out = {"supervisor": [self.supervisor], "worker": [], "memcached": [], "rend-l2": []}
        for pid, cmd in self.rend.children().items():
            base = os.path.basename(cmd[0]) if cmd else b""
            if base == b"rend-worker":
                out["worker"].append(pid)
            elif b"memcached" in base:
                out["memcached"].append(pid)
            elif base == b"rend-l2":
                out["rend-l2"].append(pid)
        return out

    def kill_one(self, rng):
        role = rng.choice(["worker", "worker", "memcached", "rend-l2"])
        pids = self.roles()[role]
        if not pids:
            return None
        try:
            os.kill(rng.choice(pids), signal.SIGKILL)
        except ProcessLookupError:
            return None
        self.kills.append((time.time(), role))
        return role

    def restarts(self):
        from rendtest import metric
        text = self.rend.scrape()
        return {"worker": metric(text, "rend_worker_restarts_total"),
                "memcached": metric(text, "rend_child_restarts_total", child="memcached"),
                "rend-l2": metric(text, "rend_child_restarts_total", child="rend-l2")}


class MemoryWatch(threading.Thread):
    """Samples the RSS of every role of every stack every few seconds."""

    def __init__(self, stacks, every_s=5.0):
        super().__init__(daemon=True)
        self.stacks, self.every_s = stacks, every_s
        self.samples = []  # (time, stack, role, total MiB of the role's processes)
        self.stop = threading.Event()

    def sample(self):
        now = time.time()
        for s in self.stacks:
            for role, pids in s.roles().items():
                sizes = [m for m in (rss_mib(p) for p in pids) if m is not None]
                if sizes:
                    self.samples.append((now, s.name, role, sum(sizes)))

    def run(self):
        while not self.stop.wait(self.every_s):
            self.sample()

    def table(self, start_after):
        rows = {}
        for t, stack, role, mib in self.samples:
            row = rows.setdefault((stack, role), {"start": None, "end": None, "peak": 0.0})
            if row["start"] is None and t >= start_after:
                row["start"] = mib
            row["end"] = mib
            row["peak"] = max(row["peak"], mib)
        return rows


class Killer(threading.Thread):
    def __init__(self, stacks, every, seed):
        super().__init__(daemon=True)
        self.stacks, self.every = stacks, every
        self.rng = random.Random(seed)
        self.stop = threading.Event()

    def run(self):
        while not self.stop.wait(self.rng.uniform(*self.every)):
            self.rng.choice(self.stacks).kill_one(self.rng)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("build_dir")
    ap.add_argument("--minutes", type=float, default=float(os.environ.get("SOAK_MINUTES", "30")))
    ap.add_argument("--clients", type=int, default=3, help="client processes per port")
    ap.add_argument("--kill-every", default="5:20", help="seconds between kills, MIN:MAX")
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--json", help="also write the report here")
    args = ap.parse_args()
    every = tuple(float(x) for x in args.kill_every.split(":"))
    build_dir = os.path.abspath(args.build_dir)

    workdir = tempfile.mkdtemp(prefix="rend-soak-", dir="/tmp")
    os.environ["REND_BUILD_DIR"] = build_dir
    from rendtest import free_port
    batch_port = free_port()
    stacks = [Stack("tiered", workdir, {"listen": {"batch_port": batch_port}}),
              Stack("chunked", workdir, {"l1": {"chunked": True}})]
    try:
        return soak(stacks, batch_port, every, args, workdir)
    finally:
        for s in stacks:
            s.rend.stop()


def soak(stacks, batch_port, every, args, workdir):
    for s in stacks:
        s.start()
    ports = [("tiered", "l1l2", stacks[0], stacks[0].rend.port), ("tiered", "l1l2batch", stacks[0], batch_port),
             ("chunked", "l1l2 chunked", stacks[1], stacks[1].rend.port)]
    print(f"soak: {args.minutes:g} min, seed {args.seed}, {args.clients} clients per port, a kill every "
          f"{every[0]:g}-{every[1]:g} s; work dir {workdir}", flush=True)

    memory = MemoryWatch(stacks)
    memory.sample()
    memory.start()
    killer = Killer(stacks, every, args.seed)
    start = time.time()
    deadline = start + args.minutes * 60
    jobs = []
    for stack_name, mode, stack, port in ports:
        for i in range(args.clients):
            jobs.append((f"{mode.replace(' ', '-')}-{i}", ("127.0.0.1", port), args.seed * 1000 + len(jobs), deadline))
    killer.start()
    try:
        with multiprocessing.Pool(len(jobs)) as pool:
            results = pool.map(run_client, jobs)
    finally:
        killer.stop.set()
        killer.join()
    elapsed = time.time() - start
    memory.sample()
    memory.stop.set()
    report = summarize(stacks, ports, jobs, results, memory, start, elapsed, args)
    print_report(report)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return 0 if report["verdict"] == "ok" else 1


def summarize(stacks, ports, jobs, results, memory, start, elapsed, args):
    per_port = {}
    for (name, address, _, _), r in zip(jobs, results):
        mode = next(m for s, m, st, p in ports if p == address[1])
        stack = next(st for s, m, st, p in ports if p == address[1])
        row = per_port.setdefault(mode, {"requests": 0, "ok": 0, "failures": {}, "wrong": 0, "lost_after_l2_kill": 0,
                                         "lost_otherwise": 0, "examples": []})
        row["requests"] += r["requests"]
        row["ok"] += r["ok"]
        row["wrong"] += r["wrong"]
        for kind, n in r["failures"].items():
            row["failures"][kind] = row["failures"].get(kind, 0) + n
        l2_kills = [t for t, role in stack.kills if role == "rend-l2"]
        for t in r["lost"]:
            if any(0 <= t - k <= LOST_GRACE_S for k in l2_kills):
                row["lost_after_l2_kill"] += 1
            else:
                row["lost_otherwise"] += 1
        row["examples"] += r["examples"][:5]
    kills = {s.name: {} for s in stacks}
    for s in stacks:
        for _, role in s.kills:
            kills[s.name][role] = kills[s.name].get(role, 0) + 1
    restarts = {s.name: s.restarts() for s in stacks}
    # A restart nobody caused is a crash.
    crashes = {s.name: {role: restarts[s.name][role] - kills[s.name].get(role, 0) for role in restarts[s.name]}
               for s in stacks}
    mem = {f"{stack}/{role}": row for (stack, role), row in memory.table(start + 60).items()}
    total = sum(r["requests"] for r in per_port.values())
    bad = (sum(r["wrong"] + r["lost_otherwise"] for r in per_port.values()) > 0 or
           any(n > 0 for c in crashes.values() for n in c.values()))
    return {"minutes": elapsed / 60, "seed": args.seed, "requests": total, "requests_per_s": total / elapsed,
            "ports": per_port, "kills": kills, "restarts": restarts, "crashes": crashes, "memory_mib": mem,
            "verdict": "FAILED" if bad else "ok"}


def print_report(r):
    print(f"\nsoak: {r['minutes']:.1f} min, {r['requests']:,} requests ({r['requests_per_s']:,.0f}/s), seed {r['seed']}")
    print(f"\n{'port':<14}{'requests':>12}{'failed':>9}  {'failures by kind':<44}{'wrong':>6}{'lost*':>7}{'lost':>6}")
    for mode, p in r["ports"].items():
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(p["failures"].items())) or "-"
        failed = sum(p["failures"].values())
        print(f"{mode:<14}{p['requests']:>12,}{failed:>9,}  {kinds:<44}{p['wrong']:>6}{p['lost_after_l2_kill']:>7}"
              f"{p['lost_otherwise']:>6}")
    print("(lost*: misses served by L1 alone within 15 s of a rend-l2 kill; lost: any other miss of a stored value)")
    print("\nkills (SIGKILL) and restarts:")
    for stack, k in r["kills"].items():
        parts = [f"{role} {k.get(role, 0)} killed / {r['restarts'][stack][role]:.0f} restarted"
                 for role in ("worker", "memcached", "rend-l2")]
        print(f"  {stack:<8} " + "; ".join(parts))
    print(f"\n{'memory (RSS, MiB)':<26}{'start':>8}{'end':>8}{'peak':>8}   (start: 1 min into the run)")
    for name, m in sorted(r["memory_mib"].items()):
        fmt = lambda v: f"{v:8.1f}" if v is not None else f"{'-':>8}"  # noqa: E731
        print(f"  {name:<24}{fmt(m['start'])}{fmt(m['end'])}{fmt(m['peak'])}")
    for mode, p in r["ports"].items():
        for e in p["examples"][:3]:
            print(f"  e.g. {mode}: {e}")
    print(f"\nverdict: {r['verdict']}")


if __name__ == "__main__":
    sys.exit(main())
