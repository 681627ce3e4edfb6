"""rend-loadgen runs: command lines, and the numbers from its --json report."""

import json
import os

from measure import bracketed
from procs import BenchError

THREADS, CONNECTIONS = 1, 32  # the memcaslap profile: 1 thread, 32 connections


def binary(build_dir):
    path = os.path.join(build_dir, "loadgen", "rend-loadgen")
    return path if os.access(path, os.X_OK) else None


def argv(lg_binary, address, *options):
    """rend-loadgen against host:port (or a unix socket path), JSON output."""
    if "/" in address:
        where = ["--unix", address]
    else:
        host, port = address.rsplit(":", 1)
        where = ["--host", host, "--port", port]
    return [lg_binary, *where, "-t", str(THREADS), "-c", str(CONNECTIONS), "--json",
            "--no-progress", *[str(o) for o in options]]


def shown(command):
    """A command line for the report, with the binary's directory and the port elided."""
    out, skip = ["rend-loadgen"], False
    for i, a in enumerate(command[1:], 1):
        if skip:
            skip = False
            continue
        if a in ("--host",):
            skip = True
            continue
        if a == "--port":
            out += ["--port", "<port>"]
            skip = True
            continue
        out.append(a)
    return " ".join(out)


def parse(text):
    """The JSON object rend-loadgen printed (its last line starting with '{')."""
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                break
    raise BenchError("rend-loadgen printed no JSON report: " + text.strip()[-300:])


def phase_numbers(report, name=None):
    """The measured phase (or the phase called `name`) as flat numbers."""
    phases = [p for p in report.get("phases", []) if (p["name"] == name if name else p["measured"])]
    if not phases:
        raise BenchError(f"rend-loadgen report has no {'phase ' + name if name else 'measured phase'}")
    p = phases[-1]
    lat = p["latency_us"]
    gets = p["commands"].get("get", {})
    return {
        "requests": p["requests"],
        "elapsed_s": p["elapsed_s"],
        "ops_per_s": p["ops_per_s"],
        "p50": lat["p50"], "p90": lat["p90"], "p99": lat["p99"], "p99_9": lat["p99_9"],
        "max": lat["max"], "mean": lat["mean"],
        "loadgen_us": p["cpu"]["us_per_request"],
        "gets": gets.get("keys", 0), "hits": gets.get("hits", 0),
        "errors": p["errors"]["total"],
        "error_samples": p.get("error_samples", []),
    }


def run(target, lg_argv, timeout_s, out_path):
    """One rend-loadgen run against `target`, CPU bracketed (see measure.bracketed).

    Every request of every phase counts for the servers' CPU per request
    (proxy_us, memcached_us, l2_us), so those are only meaningful for runs
    without a preload phase. A run with any error is a failure.
    """
    b = bracketed(target, lg_argv, timeout_s, out_path)
    report = parse(b["text"])
    r = phase_numbers(report)
    if b["rc"] != 0 or not report.get("ok", False) or r["errors"]:
        why = report.get("fatal") or "; ".join(r["error_samples"][:3]) or f"{r['errors']} errors"
        raise BenchError(f"rend-loadgen failed (exit {b['rc']}): {why}")
    total = sum(p["requests"] for p in report["phases"]) or 1
    r.update(
        wall_s=b["wall_s"], other_cores=b["other_cores"],
        proxy_us=b["proxy_s"] / total * 1e6, memcached_us=b["memcached_s"] / total * 1e6,
        l2_us=b["l2_s"] / total * 1e6, all_requests=total,
    )
    return r
