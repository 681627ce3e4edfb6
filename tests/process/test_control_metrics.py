"""rendctl and the Prometheus endpoint: exact counters, promtool, live changes under load."""
import json
import os
import shutil
import subprocess
import time
import unittest

from rendtest import BUILD_DIR, REND, RENDCTL, Client, ProcessTest, free_port, metric, wait_until
from test_lifecycle import VerifyingLoad


def promtool_problems(scrape):
    """promtool's findings on a scrape (empty when it is clean). promtool comes with the package
    prometheus, which make test installs: a missing promtool is a failure, not a skip."""
    promtool = shutil.which("promtool")
    assert promtool, "promtool (package prometheus) is not installed"
    out = subprocess.run([promtool, "check", "metrics"], input=scrape, capture_output=True, text=True, timeout=30)
    return "" if out.returncode == 0 and not out.stdout.strip() and not out.stderr.strip() else out.stdout + out.stderr


class MetricsTest(ProcessTest):
    def test_promtool_accepts_the_scrape(self):
        rend = self.start_rend(workers=2)
        c = self.client(rend.port)
        c.set(b"k", b"v")
        c.get(b"k")
        c.get(b"missing")
        self.assertEqual(promtool_problems(rend.scrape()), "")

    def test_promtool_accepts_the_scrape_of_the_default_stack(self):
        # The default configuration: two workers, L2 on (its RocksDB figures included), batch port.
        rend = self.start_rend(workers=2, config={
            "l2": {"enabled": True, "data_dir": os.path.join(self.tmp, "l2"),
                   "address": os.path.join(self.tmp, "run", "rend-l2.sock")},
            "listen": {"batch_port": free_port()},
        })
        c = self.client(rend.port)
        c.set(b"k", b"v")
        c.get(b"k")
        c.get(b"missing")
        wait_until(lambda: "rend_l2_keys" in rend.scrape(), 10, what="rend-l2's figures in the scrape")
        self.assertEqual(promtool_problems(rend.scrape()), "")

    def test_counters_and_histograms_grow_by_exactly_n(self):
        rend = self.start_rend(workers=1)
        c = self.client(rend.port)
        c.set(b"hit", b"v")
        before = rend.scrape()
        n = 37
        for _ in range(n):
            self.assertEqual(c.get(b"hit"), b"v")
        for i in range(n):
            self.assertIsNone(c.get(b"miss-%d" % i))
        for i in range(n):
            self.assertEqual(c.set(b"s-%d" % i, b"x"), b"STORED\r\n")
        after = rend.scrape()

        def grew(name, **labels):
            return metric(after, name, **labels) - metric(before, name, **labels)

        self.assertEqual(grew("rend_requests_total", tier="client", command="get", result="hit"), n)
        self.assertEqual(grew("rend_requests_total", tier="client", command="get", result="miss"), n)
        self.assertEqual(grew("rend_requests_total", tier="client", command="set", result="stored"), n)
        self.assertEqual(grew("rend_requests_total", tier="l1", command="get", result="hit"), n)
        self.assertEqual(grew("rend_requests_total", tier="l1", command="set", result="stored"), n)
        self.assertEqual(grew("rend_request_duration_seconds_count", tier="client", command="get"), 2 * n)
        self.assertEqual(grew("rend_request_duration_seconds_count", tier="client", command="set"), n)
        self.assertEqual(grew("rend_request_duration_seconds_count", tier="l1", command="set"), n)
        self.assertEqual(grew("rend_get_keys_hit_total"), n)
        self.assertGreater(grew("rend_request_duration_seconds_sum", tier="client", command="get"), 0)
        # Buckets are cumulative: the +Inf bucket equals the count.
        self.assertEqual(metric(after, "rend_request_duration_seconds_bucket", tier="client", command="set", le="+Inf"),
                         metric(after, "rend_request_duration_seconds_count", tier="client", command="set"))
        self.assertEqual(metric(after, "rend_client_connections"), 1)

    def test_counters_survive_a_worker_restart(self):
        rend = self.start_rend(workers=1)
        c = self.client(rend.port)
        for i in range(10):
            c.set(b"k%d" % i, b"v")
        before = metric(rend.scrape(), "rend_requests_total", tier="client", command="set")
        pid = rend.worker_pids()[0]
        os.kill(pid, 9)
        wait_until(lambda: rend.worker_pids().get(0) not in (None, pid), 5, what="restart")
        after = rend.scrape()
        self.assertEqual(metric(after, "rend_requests_total", tier="client", command="set"), before)
        self.assertEqual(metric(after, "rend_worker_restarts_total", worker="0"), 1)


class TieredMetricsTest(ProcessTest):
    def test_l2_tier_counters_and_rocksdb_figures(self):
        rend = self.start_rend(workers=1, config={
            "l2": {"enabled": True, "data_dir": os.path.join(self.tmp, "l2"),
                   "address": os.path.join(self.tmp, "run", "rend-l2.sock")},
            "listen": {"batch_port": 0},
        })
        c = self.client(rend.port)
        before = rend.scrape()
        n = 25
        for i in range(n):
            self.assertEqual(c.set(b"m%d" % i, b"x" * 1000), b"STORED\r\n")
        after = rend.scrape()
        grew = lambda name, **l: metric(after, name, **l) - metric(before, name, **l)
        self.assertEqual(grew("rend_requests_total", tier="l2", command="set", result="stored"), n)
        self.assertEqual(grew("rend_requests_total", tier="l1", command="set", result="stored"), n)
        self.assertEqual(grew("rend_request_duration_seconds_count", tier="l2", command="set"), n)
        self.assertEqual(metric(after, "rend_children_up", child="rend-l2"), 1)
        # rend-l2 publishes its RocksDB figures about once a second.
        wait_until(lambda: metric(rend.scrape(), "rend_l2_live_data_bytes") > 0 or
                   metric(rend.scrape(), "rend_l2_disk_bytes") > 0, 10, what="rend-l2 figures")
        scrape = rend.scrape()
        for name in ("rend_l2_sst_files_bytes", "rend_l2_pending_compaction_bytes", "rend_l2_block_cache_hits_total",
                     "rend_l2_write_stall_seconds_total", "rend_l2_keys"):
            self.assertIn(name, scrape)


class RendctlTest(ProcessTest):
    def test_status_human_and_json(self):
        rend = self.start_rend(workers=2)
        out = rend.rendctl("status")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("WORKER", out.stdout)
        self.assertRegex(out.stdout, r"\n0\s+\d+\s+ready")
        self.assertIn("memcached", out.stdout)
        js = json.loads(rend.rendctl("--json", "status").stdout)
        self.assertEqual(sorted(w["slot"] for w in js["workers"]), [0, 1])
        self.assertEqual({w["pid"] for w in js["workers"]}, set(rend.worker_pids().values()))
        self.assertEqual(js["supervisor"]["config_file"], rend.config_path)
        self.assertRegex(js["supervisor"]["config_hash"], r"^[0-9a-f]{16}$")
        self.assertEqual(js["memcached"]["pid"], rend.memcached_pid())
        self.assertIn("0.1.0", rend.rendctl("version").stdout)

    def check_config(self, path):
        out = subprocess.run([REND, "--check-config", path, "--json"], capture_output=True, text=True, timeout=30)
        return out.returncode, json.loads(out.stdout)

    def test_config_hashes_tell_a_reload_from_a_restart(self):
        # What deploy/ansible decides by: the file's hashes (rend --check-config --json) against the
        # running ones (rendctl --json status).
        rend = self.start_rend(workers=2)
        running = json.loads(rend.rendctl("--json", "status").stdout)["supervisor"]
        rc, file = self.check_config(rend.config_path)
        self.assertEqual(rc, 0)
        self.assertEqual((file["config_hash"], file["restart_hash"]), (running["config_hash"], running["restart_hash"]))

        # Layout, key order and a default spelled out change neither hash.
        spelled = dict(reversed(list(rend.config.items())), log_level="info")
        with open(rend.config_path, "w") as f:
            json.dump(spelled, f, indent=4)
        self.assertEqual(self.check_config(rend.config_path)[1], file)

        rend.config["l1"]["connections"] = 3  # a reload applies it
        rend.write_config(rend.config)
        reloadable = self.check_config(rend.config_path)[1]
        self.assertNotEqual(reloadable["config_hash"], file["config_hash"])
        self.assertEqual(reloadable["restart_hash"], file["restart_hash"])
        self.assertEqual(rend.rendctl("reload").returncode, 0)
        running = json.loads(rend.rendctl("--json", "status").stdout)["supervisor"]
        self.assertEqual(running["config_hash"], reloadable["config_hash"])

        rend.config["listen"]["batch_port"] = free_port()  # only a restart applies it
        rend.write_config(rend.config)
        self.assertNotEqual(self.check_config(rend.config_path)[1]["restart_hash"], file["restart_hash"])

        with open(rend.config_path, "w") as f:
            f.write('{"wrokers": 2}')
        rc, bad = self.check_config(rend.config_path)
        self.assertEqual(rc, 1)
        self.assertFalse(bad["ok"])
        self.assertIn("wrokers", bad["error"])

    def test_status_of_an_older_rend_still_prints(self):
        # After a package upgrade, the new rendctl may talk to the old rend until the restart: a
        # status without the newer fields still prints.
        import socket
        import threading
        path = os.path.join(self.tmp, "old.ctl")
        server = socket.socket(socket.AF_UNIX)
        server.bind(path)
        server.listen()
        self.addCleanup(server.close)
        old = {"ok": True, "supervisor": {"pid": 7, "version": "0.0.9", "uptime_s": 5, "config_file": "",
                                          "config_hash": "abc", "state": "running"},
               "workers": [{"slot": 0, "pid": 8, "state": "ready", "uptime_s": 5, "connections": 1, "restarts": 0}]}

        def answer():
            conn, _ = server.accept()
            conn.recv(4096)
            conn.sendall(json.dumps(old).encode() + b"\n")
            conn.close()

        threading.Thread(target=answer, daemon=True).start()
        config = os.path.join(self.tmp, "old.json")
        with open(config, "w") as f:
            json.dump({"control": {"socket": path}}, f)
        out = subprocess.run([RENDCTL, "--config", config, "status"], capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("rend 0.0.9 (pid 7)", out.stdout)
        self.assertIn("hash abc", out.stdout)

    def test_status_names_processes_whose_executable_was_replaced(self):
        # A package upgrade renames new files over the running ones; status says who still runs an
        # old one, and a rolling restart moves the workers onto the new one.
        bin_dir = os.path.join(self.tmp, "bin")
        os.mkdir(bin_dir)
        for name in ("rend", "rend-worker"):
            shutil.copy(os.path.join(BUILD_DIR, "supervisor" if name == "rend" else "worker", name), bin_dir)
        rend = self.start_rend(workers=2, binary=os.path.join(bin_dir, "rend"))

        def replaced():
            return json.loads(rend.rendctl("--json", "status").stdout)["supervisor"]["replaced_executables"]

        self.assertEqual(replaced(), [])
        for name in ("rend-worker", "rend"):
            shutil.copy(os.path.join(bin_dir, name), os.path.join(bin_dir, name + ".new"))
            os.rename(os.path.join(bin_dir, name + ".new"), os.path.join(bin_dir, name))
            if name == "rend-worker":
                self.assertEqual(sorted(replaced()), ["rend-worker 0", "rend-worker 1"])
                self.assertIn("replaced on disk", rend.rendctl("status").stdout)
                self.assertEqual(rend.rendctl("restart").returncode, 0)
                self.assertEqual(replaced(), [])
        self.assertEqual(replaced(), ["rend"])

    def test_gauges_stay_exact_across_a_roll(self):
        # A roll overlaps the departing worker and its replacement in one slot: each keeps gauges of
        # its own, so the old one letting go of its connections does not take the new one's count
        # below zero (it read 2^64 - 3 when they shared the slot's figures).
        rend = self.start_rend(workers=2)
        old = [self.client(rend.port) for _ in range(6)]
        for c in old:
            self.assertEqual(c.call(b"version\r\n")[:7], b"VERSION")
        wait_until(lambda: metric(rend.scrape(), "rend_client_connections") == 6, 10, what="6 connections")
        self.assertEqual(rend.rendctl("restart").returncode, 0)
        new = [self.client(rend.port) for _ in range(3)]
        for c in new:
            self.assertEqual(c.call(b"version\r\n")[:7], b"VERSION")

        def connections():
            return sum(w["connections"] for w in json.loads(rend.rendctl("--json", "status").stdout)["workers"])

        # The 6 old connections were handed to the new workers, and counted once there.
        wait_until(lambda: connections() == 9, 10, what="the 6 handed-over and 3 new connections, counted once")
        for c in old:
            self.assertEqual(c.call(b"version\r\n")[:7], b"VERSION")
            c.close()
        wait_until(lambda: connections() == 3, 10, what="the 3 new connections counted, the 6 closed ones not")
        scrape = rend.scrape()
        self.assertEqual(metric(scrape, "rend_client_connections"), 3)
        # Each worker holds l1.connections (2) to memcached, and as many for meta commands (l1only).
        self.assertEqual(metric(scrape, "rend_backend_connections_up", tier="l1"), 8)
        self.assertGreater(metric(scrape, "rend_requests_total", command="version"), 9 - 1)

    def test_restart_reload_and_scale_under_load_lose_nothing(self):
        rend = self.start_rend(workers=2)
        load = VerifyingLoad(rend.port, clients=6).start()
        self.addCleanup(load.stop)
        time.sleep(0.3)
        before = set(rend.worker_pids().values())
        out = rend.rendctl("restart")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertFalse(before & set(rend.worker_pids().values()), "every worker replaced")

        rend.config["l1"]["connections"] = 3
        rend.write_config(rend.config)
        out = rend.rendctl("reload")
        self.assertEqual(out.returncode, 0, out.stderr)

        out = rend.rendctl("scale", "1")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(len(rend.worker_pids()), 1)
        out = rend.rendctl("scale", "3")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(sorted(rend.worker_pids()), [0, 1, 2])
        out = rend.rendctl("restart-worker", "2")
        self.assertEqual(out.returncode, 0, out.stderr)
        time.sleep(0.5)
        load.stop()
        print(f"ok {load.ok}, reconnects {load.reconnects}")
        self.assertEqual(load.failures, [])
        self.assertGreater(load.ok, 200)
        scrape = rend.scrape()
        self.assertEqual(metric(scrape, "rend_reloads_total", result="ok"), 1)
        self.assertEqual(metric(scrape, "rend_children_up", child="worker"), 3)

    def test_invalid_reload_is_rejected_with_the_key(self):
        rend = self.start_rend(workers=2)
        before = rend.worker_pids()
        rend.config["worker"] = {"max_item_size": 0}
        rend.write_config(rend.config)
        out = rend.rendctl("reload")
        self.assertEqual(out.returncode, 1)
        self.assertIn("worker.max_item_size: must be between", out.stderr)
        self.assertEqual(rend.worker_pids(), before)
        self.assertEqual(metric(rend.scrape(), "rend_reloads_total", result="failed"), 1)
        self.assertEqual(rend.rendctl("restart-worker", "7").returncode, 1)
        self.assertEqual(rend.rendctl("scale", "0").returncode, 1)

    def test_malformed_control_requests_are_refused_not_fatal(self):
        # The control socket takes a JSON object per line; anything else (sent by any process of
        # rend's user) gets an error reply and the supervisor carries on. `[1]` used to kill it.
        import socket
        rend = self.start_rend(workers=1)
        lines = [b'[1]', b'"status"', b'5', b'{"cmd": 5}', b'{"cmd": "scale", "workers": "3"}',
                 b'{"cmd": "scale", "workers": 1e300}', b'{"cmd": "restart-worker", "slot": 99999999999}',
                 b'{"cmd": "restart-worker", "slot": [0]}', b'{', b'\xff\xfe', b'{"cmd": "nope"}']
        for line in lines:
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(10)
            s.connect(rend.control_socket)
            s.sendall(line + b"\n")
            reply = json.loads(s.makefile("rb").readline())
            s.close()
            self.assertFalse(reply["ok"], line)
            self.assertTrue(reply["error"], line)
        self.assertIsNone(rend.proc.poll(), "the supervisor is still running")
        self.assertEqual(rend.rendctl("status").returncode, 0)

    def test_stop_command(self):
        rend = self.start_rend(workers=1)
        out = rend.rendctl("stop")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(rend.proc.wait(20), 0)

    def test_stopped_supervisor_fails_fast_with_a_clear_message(self):
        path = os.path.join(self.tmp, "nothing.ctl")
        started = time.monotonic()
        out = subprocess.run([RENDCTL, "--socket", path, "status"], capture_output=True, text=True, timeout=10)
        self.assertEqual(out.returncode, 2)
        self.assertIn("cannot connect", out.stderr)
        self.assertIn("is rend running?", out.stderr)
        self.assertLess(time.monotonic() - started, 2)
