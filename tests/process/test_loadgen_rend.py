"""rend-loadgen's verifying workloads (setget, sizes, setops) against rend in every mode:
l1only, l1l2 (main port) and l1l2batch (batch port), with plain and chunked L1, in text and
binary. test_loadgen_rend_meta.py runs the same in the meta protocol."""
import json
import os
import subprocess

from rendtest import BUILD_DIR, ProcessTest, free_port

LOADGEN = os.path.join(BUILD_DIR, "loadgen", "rend-loadgen")

WORKLOADS = [
    ["--workload", "setget", "--ops", "4000", "--connections", "8", "--value-size", "1:20000"],
    ["--workload", "sizes", "--size-max", "1048000", "--size-step", "65536", "--connections", "4"],
    ["--workload", "setops", "--ops", "4000", "--connections", "8"],
]


# Chunked L1: every size across the first chunk boundaries one by one, then up to 16 MiB (beyond
# memcached's own 1 MiB item limit).
CHUNKED_MAX = 16 << 20
CHUNKED_WORKLOADS = WORKLOADS + [
    ["--workload", "sizes", "--size-max", "3000", "--size-step", "1", "--connections", "4"],
    # Up to memcached's own limit at -I 16m: its item header, the key and the CRLF count.
    ["--workload", "sizes", "--size-max", str(CHUNKED_MAX - 512), "--size-step", str(1 << 20), "--connections", "2",
     "--timeout", "30000"],
]
# A 16 MiB value is ~15000 L1 items in one batch; on a loaded 2-core machine memcached can take
# longer than the default 1 s L1 timeout to get through one, so these runs allow 10 s.
CHUNKED = {"l1": {"chunked": True, "chunk_size": 1184, "timeout_ms": 10000},
           "worker": {"max_item_size": CHUNKED_MAX}}


# Every command at random (blast: gets, multi-gets, gat, touch, the stores, delete, incr/decr) and
# the bench profile: no errors, and every request counted (run by test_loadgen_rend_meta.py).
LOAD = [
    ["--workload", "blast", "--ops", "20000", "--connections", "8", "--pipeline", "4", "--value-size", "10:2000",
     "--key-space", "2000"],
    ["--workload", "bench", "--ops", "20000", "--connections", "8", "--pipeline", "4"],
]


class LoadgenAgainstRendTest(ProcessTest):
    PROTOCOLS = ("text", "binary")
    LOAD = False  # also run LOAD (in every protocol) on the plain-L1 targets

    def loadgen(self, port, protocol, args):
        out = subprocess.run([LOADGEN, "--port", str(port), "--protocol", protocol, "--json", *args],
                             capture_output=True, text=True, timeout=240)
        label = f"{protocol} {' '.join(args)}"
        self.assertEqual(out.returncode, 0, f"{label}:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
        report = json.loads(out.stdout)
        print(f"port {port} {label}: ok")
        self.assertTrue(report["ok"], label)
        self.assertEqual(report["params"]["protocol"], protocol)
        return report

    def run_all(self, port, workloads=WORKLOADS):
        for protocol in self.PROTOCOLS:
            for args in workloads:
                self.loadgen(port, protocol, args)

    def run_load(self, port):
        if not self.LOAD:
            return
        for protocol in self.PROTOCOLS:
            for args in LOAD:
                report = self.loadgen(port, protocol, args)
                measured = report["phases"][-1]
                self.assertEqual(measured["requests"], 20000)
                self.assertEqual(measured["errors"]["total"], 0)
                self.assertEqual(measured["aborted"], 0)
                commands = measured["commands"]
                self.assertEqual(sum(c["requests"] for c in commands.values()), 20000)
                if args[1] == "blast":
                    self.assertEqual(len(commands), 12, "blast sends every command")
                else:
                    self.assertEqual(commands["get"]["hits"], commands["get"]["requests"], "bench is preloaded")

    def test_l1only(self):
        rend = self.start_rend(workers=2, memory_mb=256)
        self.run_all(rend.port)
        self.run_load(rend.port)

    def test_l1l2_main_and_batch_ports(self):
        batch = free_port()
        rend = self.start_rend(workers=2, memory_mb=256, config={
            "l2": {"enabled": True, "data_dir": os.path.join(self.tmp, "l2"),
                   "address": os.path.join(self.tmp, "run", "rend-l2.sock")},
            "listen": {"batch_port": batch},
        })
        self.run_all(rend.port)
        self.run_all(batch)
        self.run_load(rend.port)
        self.run_load(batch)

    def test_chunked_l1only(self):
        rend = self.start_rend(workers=2, memory_mb=512, config=CHUNKED)
        self.run_all(rend.port, CHUNKED_WORKLOADS)

    def test_chunked_l1l2_main_and_batch_ports(self):
        batch = free_port()
        # rend-l2 too: writing a 16 MiB value (WAL, memtable, the flush it triggers) while the
        # other tests load both cores took longer than the default 2 s L2 timeout once.
        rend = self.start_rend(workers=2, memory_mb=512, config={
            **CHUNKED,
            "l2": {"enabled": True, "data_dir": os.path.join(self.tmp, "l2"),
                   "address": os.path.join(self.tmp, "run", "rend-l2.sock"), "timeout_ms": 10000},
            "listen": {"batch_port": batch},
        })
        self.run_all(rend.port, CHUNKED_WORKLOADS)
        self.run_all(batch, CHUNKED_WORKLOADS)
