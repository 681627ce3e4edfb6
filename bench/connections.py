#!/usr/bin/env python3
"""Connection scale: memory per idle client connection, rend beside memcached, and rend holding
30,000 connections that each store and read a key.

    ./bench/connections.py BUILD_DIR        (make bench-connections)

For each target, client processes (each below the 20,000-descriptor hard limit of these machines)
open N connections, send one `set` and one `get` on every one and check the replies, then hold them
open while the target's resident memory (VmRSS: memcached itself; rend's supervisor and workers)
is read. "Per connection" is the growth divided by N. Prints a Markdown table.
"""
import json
import multiprocessing
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from procs import _comm, descendants, free_port, log  # noqa: E402

PER_CLIENT_PROCESS = 15000


def rss_kb(pids):
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def client(port, first, count, work, ready, release, result, source):
    """Opens `count` connections from `source` (a loopback address of its own, so that 30,000
    connections do not run out of ephemeral ports), stores and reads one key on each, and holds
    them until released."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    socks, ok = [], 0
    try:
        for i in range(count):
            s = socket.create_connection(("127.0.0.1", port), timeout=30, source_address=(source, 0))
            socks.append(s)
        for i, s in enumerate(socks):
            key = b"conn-%d" % (first + i)
            s.sendall(b"version\r\n" if work == "version" else b"set " + key + b" 0 0 1\r\nx\r\nget " + key + b"\r\n")
        end = b"\r\n" if work == "version" else b"END\r\n"
        for i, s in enumerate(socks):
            got = b""
            while not got.endswith(end):
                chunk = s.recv(4096)
                if not chunk:
                    break
                got += chunk
            ok += got.startswith(b"VERSION") if work == "version" else got.endswith(b"x\r\nEND\r\n")
    except OSError as e:
        log(f"client: {e}")
    result.put(ok)
    ready.set()
    release.wait(120)
    for s in socks:
        s.close()


def measure(name, port, pids, n, work):
    """The growth of a freshly started target's memory (`pids`) while n connections sit idle,
    each having been served `work` ("version", or "set+get" of a key of its own)."""
    before = rss_kb(pids())
    served, after = hold(port, n, work, lambda: rss_kb(pids()))
    per = (after - before) * 1024 / n
    log(f"{name}: {n} connections, {served} served, RSS {before} -> {after} KiB, {per:.0f} B per connection")
    return {"target": name, "connections": n, "work": work, "served": served, "before_kb": before,
            "after_kb": after, "per_connection_b": round(per)}


def hold(port, n, work, while_held=lambda: 0):
    """Opens n connections over client processes, serves a set and a get on each, calls
    `while_held()` once they are idle, closes them; returns (served, what while_held returned)."""
    measure.round = getattr(measure, "round", 0) + 1
    ctx = multiprocessing.get_context("fork")
    release = ctx.Event()
    result = ctx.Queue()
    procs, readies = [], []
    first = 0
    while first < n:
        count = min(PER_CLIENT_PROCESS, n - first)
        ready = ctx.Event()
        source = f"127.0.{measure.round % 200 + 1}.{len(procs) + 1}"
        p = ctx.Process(target=client, args=(port, first, count, work, ready, release, result, source))
        p.start()
        procs.append(p)
        readies.append(ready)
        first += count
    for r in readies:
        r.wait(300)
    served = sum(result.get(timeout=60) for _ in procs)
    time.sleep(2)  # idle: in-flight work done
    held = while_held()
    release.set()
    for p in procs:
        p.join(60)
    time.sleep(1)  # the server has seen them close
    return served, held


def wait_port(port, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listens on {port}")


def start_memcached(tmp):
    port = free_port()
    p = subprocess.Popen(["memcached", "-p", str(port), "-U", "0", "-l", "127.0.0.1", "-c", "19000", "-m", "64",
                          "-t", "4"] + (["-u", "root"] if os.geteuid() == 0 else []))
    wait_port(port)
    return p, port, lambda: [p.pid]


def start_rend(build, tmp):
    """The default shape: two workers, two connections per backend, L2 on."""
    port = free_port()
    run = os.path.join(tmp, "run")
    shutil.rmtree(run, ignore_errors=True)
    shutil.rmtree(os.path.join(tmp, "l2"), ignore_errors=True)
    cfg = {"workers": 2, "run_dir": run, "listen": {"port": port, "batch_port": free_port()},
           "worker": {"max_connections": 19000}, "l1": {"address": os.path.join(run, "memcached.sock")},
           "l2": {"enabled": True, "data_dir": os.path.join(tmp, "l2"), "address": os.path.join(run, "rend-l2.sock")},
           "memcached": {"memory_mb": 64}, "metrics": {"listen": f"127.0.0.1:{free_port()}"},
           "control": {"socket": os.path.join(run, "rend.ctl")}}
    path = os.path.join(tmp, "rend.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    p = subprocess.Popen([os.path.join(build, "supervisor", "rend"), "--config", path],
                         stdout=open(os.path.join(tmp, "rend.log"), "a"), stderr=subprocess.STDOUT,
                         start_new_session=True)
    wait_port(port)
    time.sleep(1)
    return p, port, lambda: [p.pid] + [c for c in descendants(p.pid) if _comm(c) == "rend-worker"]


def stop(p):
    p.terminate()
    try:
        p.wait(30)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def main():
    build = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
    tmp = tempfile.mkdtemp(prefix="rend-conns-")
    rows = []
    plan = [("memcached 1.6", 15000, "version"), ("rend", 15000, "version"), ("memcached 1.6", 15000, "set+get"),
            ("rend", 15000, "set+get"), ("rend", 30000, "set+get")]
    try:
        for name, n, work in plan:
            p, port, pids = start_memcached(tmp) if name.startswith("memcached") else start_rend(build, tmp)
            try:
                rows.append(measure(name, port, pids, n, work))
            finally:
                stop(p)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("\nEach row a fresh start; rend: 2 workers, 2 connections per backend, L2 on.\n")
    print("| target | connections | each served | served | RSS growth | per connection |")
    print("|---|---:|---|---:|---:|---:|")
    for r in rows:
        growth = (r["after_kb"] - r["before_kb"]) / 1024
        print(f"| {r['target']} | {r['connections']:,} | {r['work']} | {r['served']:,} | {growth:.1f} MiB "
              f"| {r['per_connection_b']:,} B |")
    return 0 if all(r["served"] == r["connections"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
