"""The chunked-L1 part of `make bench`: rend l1only with plain L1 against chunked L1 at several
chunk sizes, for several value sizes, under the same rend-loadgen load.

For each (L1 layout, value size): a fresh memcached -m 1024 and rend with 1 worker; rend-loadgen
`mix` (90% get / 10% set, 32 connections, the key space preloaded first), and afterwards the
memory memcached holds for the key space (`stats slabs`: used chunks x chunk size, so slab
rounding counts). Reported: ops/s, rend's CPU per request, and memory per byte of value, each
plain and chunked; and per chunk size one score, the geometric mean over the value sizes of
(ops/s relative to plain) / (memory relative to plain): throughput per byte of RAM, relative to
plain L1. The default `l1.chunk_size` is the size with the best score.
"""

import math
import os

import loadgen
from measure import undisturbed
from procs import BenchError, Skip, log, server_stats
from targets import Rend

CHUNK_SIZES = (480, 1184, 2904, 7104)  # memcached 1.6 slab class sizes (-n 48 -f 1.25)
VALUE_SIZES = (100, 1024, 10240, 102400)
KEY_SPACE_BYTES = 200 << 20  # key space x value size, so that it fits in -m 1024 with overhead
MAX_KEYS = 10000


def key_space(value_size):
    return max(100, min(MAX_KEYS, KEY_SPACE_BYTES // value_size))


class ChunkedRend(Rend):
    """rend l1only, 1 worker, with plain L1 (chunk_size None) or chunked L1 of that size."""

    def __init__(self, workdir, procs, build_dir, chunk_size):
        label = f"chunked {chunk_size}" if chunk_size else "plain"
        super().__init__(workdir, procs, build_dir, 1, key=f"rend-l1-{label.replace(' ', '-')}",
                         name=f"rend l1only w1, {label} L1")
        self.chunk_size = chunk_size
        self.label = label

    def _config(self, binary, known, memcached_sock, port):
        config = super()._config(binary, known, memcached_sock, port)
        if self.chunk_size:
            if "l1.chunked" not in known:
                raise Skip("this rend has no chunked L1 (no l1.chunked option)")
            config["l1"].update({"chunked": True, "chunk_size": self.chunk_size})
        return config


def memory_held(memcached_address):
    """Bytes of slab memory memcached's items occupy (each in its class's chunk size)."""
    slabs = server_stats(memcached_address, b"slabs")
    total = 0
    for name, value in slabs.items():
        if name.endswith(":used_chunks"):
            total += int(value) * int(slabs[name.split(":")[0] + ":chunk_size"])
    return total


def _describe(label, size):
    def line(r):
        return (f"{label:>14s} {size:>7d} B  {r['ops_per_s']:>9,.0f} ops/s  rend {r['proxy_us']:6.2f} us/req  "
                f"memory {r['memory_ratio']:5.2f} B per value byte  other {r['other_cores']:.2f} cores")
    return line


def measure(workdir, procs, build_dir, args, lg, failures, skipped, duration_s=4):
    """Returns {"rows": {label: {value_size: result}}, "scores": {chunk_size: score}}."""
    rows = {}
    for chunk in (None,) + CHUNK_SIZES:
        target = ChunkedRend(workdir, procs, build_dir, chunk)
        try:
            target.start()
        except Skip as e:
            skipped.append(f"chunked L1: {e}")
            procs.stop_all()
            return None
        except BenchError as e:
            failures[target.key] = str(e)
            procs.stop_all()
            continue
        rows[target.label] = {}
        try:
            for size in VALUE_SIZES:
                keys = key_space(size)
                argv = loadgen.argv(lg, target.address, "-w", "mix", "--value-size", size, "--key-space", keys,
                                    "--get-ratio", "0.9", "-d", duration_s)
                out = os.path.join(target.dir, f"loadgen-{size}.log")

                def run():
                    r = loadgen.run(target, argv, 120, out)
                    r["memory_ratio"] = memory_held(target.backend) / (keys * size)
                    return r

                rows[target.label][size] = undisturbed(run, args, _describe(target.label, size))
                rows[target.label][size]["command"] = loadgen.shown(argv)
        except BenchError as e:
            log(f"FAILED {target.name}: {e}")
            failures[target.key] = str(e)
        finally:
            procs.stop([target.proxy, target.memcached])
    return {"rows": rows, "scores": scores(rows)}


def scores(rows):
    plain = rows.get("plain", {})
    out = {}
    for chunk in CHUNK_SIZES:
        r = rows.get(f"chunked {chunk}", {})
        terms = []
        for size in VALUE_SIZES:
            if size in r and size in plain:
                speed = r[size]["ops_per_s"] / plain[size]["ops_per_s"]
                memory = r[size]["memory_ratio"] / plain[size]["memory_ratio"]
                terms.append(speed / memory)
        if len(terms) == len(VALUE_SIZES):
            out[chunk] = math.exp(sum(math.log(t) for t in terms) / len(terms))
    return out


def render(result):
    """The report's section (Markdown)."""
    if not result or "plain" not in result["rows"]:
        return "## Chunked L1\n\nNot measured (see Skipped / failed).\n"
    rows, plain = result["rows"], result["rows"]["plain"]
    out = ["## Chunked L1", "",
           "How measured: rend l1only, 1 worker, a fresh memcached -m 1024 -t 4 per layout; "
           "rend-loadgen `mix`, 90% get / 10% set, 32 connections, the key space (10000 keys, "
           "fewer for large values: 200 MiB in all) preloaded, then 4 s measured. Memory: "
           "memcached's slab memory for the key space (`stats slabs` used chunks x chunk size) "
           "per byte of value. Score: geometric mean over value sizes of (ops/s vs plain) / "
           "(memory vs plain).", "",
           "| L1 layout | value size | ops/s | vs plain | rend CPU µs/request | memory per value byte |",
           "|---|---:|---:|---:|---:|---:|"]
    for label, by_size in rows.items():
        for size, r in by_size.items():
            base = plain.get(size)
            ratio = f"{r['ops_per_s'] / base['ops_per_s']:.2f}×" if base else "—"
            out.append(f"| {label} | {size:,} B | {r['ops_per_s']:,.0f} | {ratio} | {r['proxy_us']:.2f} | "
                       f"{r['memory_ratio']:.2f} |")
    out += ["", "| l1.chunk_size | score (throughput per byte of RAM, plain = 1) |", "|---:|---:|"]
    best = max(result["scores"], key=result["scores"].get) if result["scores"] else None
    for chunk, score in result["scores"].items():
        mark = " **best**" if chunk == best else ""
        out.append(f"| {chunk} | {score:.2f}{mark} |")
    out.append("")
    return "\n".join(out)
