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
from procs import free_port, log  # noqa: E402

PER_CLIENT_PROCESS = 15000


def rss_kb(pids):
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def client(port, first, count, ready, release, result):
    """Opens `count` connections, stores and reads one key on each, holds them until released."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    socks, ok = [], 0
    try:
        for i in range(count):
            s = socket.create_connection(("127.0.0.1", port), timeout=30)
            socks.append(s)
        for i, s in enumerate(socks):
            key = b"conn-%d" % (first + i)
            s.sendall(b"set " + key + b" 0 0 1\r\nx\r\nget " + key + b"\r\n")
        want = b"STORED\r\nVALUE "
        for i, s in enumerate(socks):
            got = b""
            while not got.endswith(b"END\r\n"):
                chunk = s.recv(4096)
                if not chunk:
                    break
                got += chunk
            ok += got.startswith(want) and got.endswith(b"x\r\nEND\r\n")
    except OSError as e:
        log(f"client: {e}")
    result.put(ok)
    ready.set()
    release.wait(120)
    for s in socks:
        s.close()


def measure(name, port, pids, n):
    before = rss_kb(pids())
    ctx = multiprocessing.get_context("fork")
    release = ctx.Event()
    result = ctx.Queue()
    procs, readies = [], []
    first = 0
    while first < n:
        count = min(PER_CLIENT_PROCESS, n - first)
        ready = ctx.Event()
        p = ctx.Process(target=client, args=(port, first, count, ready, release, result))
        p.start()
        procs.append(p)
        readies.append(ready)
        first += count
    for r in readies:
        r.wait(300)
    served = sum(result.get(timeout=10) for _ in procs)
    time.sleep(1)
    after = rss_kb(pids())
    release.set()
    for p in procs:
        p.join(60)
    per = (after - before) * 1024 / n
    log(f"{name}: {n} connections, {served} served, RSS {before} -> {after} KiB, {per:.0f} B per connection")
    return {"target": name, "connections": n, "served": served, "before_kb": before, "after_kb": after,
            "per_connection_b": round(per)}


def children_of(ppid):
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
            if int(stat[stat.rindex(")") + 2:].split()[1]) == ppid:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    out.append((int(pid), f.read().split(b"\0")[0]))
        except (OSError, ValueError):
            pass
    return out


def wait_port(port, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listens on {port}")


def main():
    build = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
    tmp = tempfile.mkdtemp(prefix="rend-conns-")
    started = []
    rows = []
    try:
        mc_port = free_port()
        mc = subprocess.Popen(["memcached", "-p", str(mc_port), "-U", "0", "-l", "127.0.0.1", "-c", "19000",
                               "-m", "64", "-t", "4"] + (["-u", "root"] if os.geteuid() == 0 else []))
        started.append(mc)
        wait_port(mc_port)
        rows.append(measure("memcached 1.6 (-c 19000)", mc_port, lambda: [mc.pid], 15000))

        port = free_port()
        cfg = {"workers": 2, "run_dir": os.path.join(tmp, "run"), "listen": {"port": port, "batch_port": free_port()},
               "worker": {"max_connections": 19000},
               "l1": {"address": os.path.join(tmp, "run", "memcached.sock")},
               "l2": {"enabled": True, "data_dir": os.path.join(tmp, "l2"),
                      "address": os.path.join(tmp, "run", "rend-l2.sock")},
               "memcached": {"memory_mb": 64}, "metrics": {"listen": f"127.0.0.1:{free_port()}"},
               "control": {"socket": os.path.join(tmp, "run", "rend.ctl")}}
        path = os.path.join(tmp, "rend.json")
        with open(path, "w") as f:
            json.dump(cfg, f)
        rend = subprocess.Popen([os.path.join(build, "supervisor", "rend"), "--config", path],
                                stdout=open(os.path.join(tmp, "rend.log"), "w"), stderr=subprocess.STDOUT,
                                start_new_session=True)
        started.append(rend)
        wait_port(port)
        time.sleep(1)

        def rend_pids():
            return [rend.pid] + [p for p, cmd in children_of(rend.pid) if cmd.endswith(b"rend-worker")]

        rows.append(measure("rend (2 workers, L2 on)", port, rend_pids, 15000))
        rows.append(measure("rend (2 workers, L2 on)", port, rend_pids, 30000))
    finally:
        for p in started:
            p.terminate()
        for p in started:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    print("\n| target | connections | served | RSS growth | per connection |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['target']} | {r['connections']:,} | {r['served']:,} | {(r['after_kb'] - r['before_kb']) / 1024:.1f} MiB "
              f"| {r['per_connection_b']:,} B |")
    return 0 if all(r["served"] == r["connections"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
