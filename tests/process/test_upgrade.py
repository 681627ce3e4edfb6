"""In-place upgrade of rend (rendctl upgrade, SIGUSR2): the supervisor executes the binary now at
its path in place, keeps its pid, sockets, memcached and rend-l2, and rolls the workers onto the new
rend-worker with their clients handed over; clients that never retry see nothing. A binary that
cannot take over leaves rend as it was."""
import json
import os
import shutil
import signal
import subprocess
import time

from rendtest import BUILD_DIR, REND, ProcessTest, free_port, metric, wait_until
from strict_load import StrictLoad

BINARIES = {"rend": ("supervisor", "rend"), "rend-worker": ("worker", "rend-worker"), "rend-l2": ("l2", "rend-l2")}


def exe_of(pid):
    return os.readlink(f"/proc/{pid}/exe")


class UpgradeTest(ProcessTest):
    def setUp(self):
        super().setUp()
        # rend runs from a folder of its own, as from /usr/bin, so the test can replace its files.
        self.bin = os.path.join(self.tmp, "bin")
        os.makedirs(self.bin)
        for name in BINARIES:
            self.install(name)

    def install(self, name, source=None):
        """Puts a new file at bin/name as a package manager does: written aside, renamed over."""
        source = source or os.path.join(BUILD_DIR, *BINARIES[name])
        staged = os.path.join(self.bin, f".{name}.new")
        shutil.copy2(source, staged)
        os.replace(staged, os.path.join(self.bin, name))

    def start(self):
        self.batch_port = free_port()
        return self.start_rend(binary=os.path.join(self.bin, "rend"), config={
            "l2": {"enabled": True, "data_dir": os.path.join(self.tmp, "l2"),
                   "address": os.path.join(self.tmp, "run", "rend-l2.sock")},
            "listen": {"batch_port": self.batch_port},
        })

    def status(self, rend):
        out = rend.rendctl("--json", "status", timeout=10)
        self.assertEqual(out.returncode, 0, out.stderr)
        return json.loads(out.stdout)

    def settled_with_new_workers(self, rend, old_workers):
        pids = rend.worker_pids()
        return (len(pids) == rend.config["workers"] and not set(pids.values()) & set(old_workers.values())
                and self.status(rend)["supervisor"]["state"] == "running")

    def test_upgrade_to_a_freshly_built_binary_fails_nothing(self):
        rend = self.start()
        self.assertEqual(rend.rendctl("reload").returncode, 0)  # a counter to carry over
        load = StrictLoad([rend.port, self.batch_port], connections=16).start()
        self.addCleanup(load.stop)
        time.sleep(1.0)
        supervisor, memcached, l2 = rend.proc.pid, rend.memcached_pid(), rend.l2_pid()
        workers = rend.worker_pids()
        scraped = rend.scrape()
        handed = metric(scraped, "rend_client_connections_handed_over_total")
        gets = metric(scraped, "rend_client_read_bytes_total")
        for name in ("rend", "rend-worker"):
            self.install(name)
        self.assertEqual(self.status(rend)["supervisor"]["replaced_executables"][0], "rend")
        before = load.ok
        started = time.monotonic()
        out = rend.rendctl("upgrade", timeout=60)
        took = time.monotonic() - started
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr + rend.read_log()[-3000:])
        self.assertIn(f"upgraded in place: rend", out.stdout)
        self.assertIn(f"(pid {supervisor}, 2 workers)", out.stdout)
        # The same supervisor, memcached and rend-l2; new workers; everything runs the new files.
        self.assertIsNone(rend.proc.poll())
        self.assertEqual((rend.memcached_pid(), rend.l2_pid()), (memcached, l2))
        wait_until(lambda: self.settled_with_new_workers(rend, workers), 30, what="workers rolled")
        self.assertFalse(exe_of(supervisor).endswith("(deleted)"), exe_of(supervisor))
        for pid in rend.worker_pids().values():
            self.assertEqual(exe_of(pid), os.path.join(self.bin, "rend-worker"))
        status = self.status(rend)
        self.assertEqual(status["supervisor"]["pid"], supervisor)
        self.assertEqual(status["supervisor"]["replaced_executables"], [])
        time.sleep(0.5)
        self.assertGreater(load.ok, before + 100, "the load kept being served")
        # Counters carry on: the supervisor's own and the workers'.
        scraped = rend.scrape()
        self.assertEqual(metric(scraped, "rend_reloads_total", result="ok"), 1)
        self.assertEqual(metric(scraped, "rend_upgrades_total", result="ok"), 1)
        self.assertGreater(metric(scraped, "rend_client_read_bytes_total"), gets)
        self.assertEqual(metric(scraped, "rend_client_connections_handed_over_total") - handed, 16)
        print(f"upgrade took {took:.2f} s; after it: {load.summary()}")

        # SIGUSR2 does the same, without anyone waiting for an answer.
        workers = rend.worker_pids()
        rend.signal(signal.SIGUSR2)
        wait_until(lambda: self.settled_with_new_workers(rend, workers), 30, what="workers rolled after SIGUSR2")
        wait_until(lambda: metric(rend.scrape(), "rend_upgrades_total", result="ok") == 2, 10, what="second upgrade")
        self.assertEqual((rend.proc.pid, rend.memcached_pid(), rend.l2_pid()), (supervisor, memcached, l2))
        time.sleep(0.5)
        load.stop()
        print(f"strict clients: {load.summary()}")
        self.assertEqual((load.failed, load.wrong, load.reconnects), (0, 0, 0), load.samples)
        self.assertGreater(load.ok, 2000)
        # It still stops cleanly, children and all.
        rend.stop()
        self.assertEqual(rend.proc.returncode, 0, rend.read_log()[-3000:])
        for pid in (memcached, l2):
            self.assertFalse(os.path.exists(f"/proc/{pid}") and open(f"/proc/{pid}/stat").read().split()[2] != "Z")

    def test_a_new_rend_l2_is_started_with_l2_requests_held(self):
        rend = self.start()
        load = StrictLoad([rend.port, self.batch_port], connections=16).start()
        self.addCleanup(load.stop)
        time.sleep(1.0)
        supervisor, memcached, l2, workers = rend.proc.pid, rend.memcached_pid(), rend.l2_pid(), rend.worker_pids()
        self.install("rend-l2")
        self.assertEqual(self.status(rend)["supervisor"]["replaced_executables"], ["rend-l2"])
        before = load.ok
        started = time.monotonic()
        out = rend.rendctl("restart-l2", timeout=60)
        took = time.monotonic() - started
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr + rend.read_log()[-3000:])
        self.assertNotEqual(rend.l2_pid(), l2)
        self.assertEqual((rend.proc.pid, rend.memcached_pid(), rend.worker_pids()), (supervisor, memcached, workers))
        self.assertEqual(self.status(rend)["supervisor"]["replaced_executables"], [])
        time.sleep(1.0)
        load.stop()
        print(f"restart-l2 took {took:.2f} s; strict clients: {load.summary()}")
        self.assertGreater(load.ok, before + 100, "the load kept being served")
        self.assertEqual((load.failed, load.wrong, load.reconnects), (0, 0, 0), load.samples)
        # What L2 held before is there after: the batch port reads L2 itself on an L1 miss.
        c = self.client(rend.port)
        self.assertEqual(c.call(b"set kept 0 0 4\r\nsafe\r\n"), b"STORED\r\n")
        self.assertEqual(rend.rendctl("restart-l2", timeout=60).returncode, 0)
        self.assertEqual(c.call(b"get kept\r\n"), b"VALUE kept 0 4\r\nsafe\r\nEND\r\n")
        self.assertEqual(metric(rend.scrape(), "rend_child_restarts_total", child="rend-l2"), 0, "planned, not crashes")

    def test_a_binary_that_does_not_start_is_not_executed(self):
        rend = self.start()
        load = StrictLoad([rend.port], connections=4).start()
        self.addCleanup(load.stop)
        supervisor, workers = rend.proc.pid, rend.worker_pids()
        broken = os.path.join(self.tmp, "broken")
        with open(broken, "w") as f:
            f.write("#!/bin/sh\necho 'error while loading shared libraries: librocksdb.so.7' >&2\nexit 127\n")
        os.chmod(broken, 0o755)
        self.install("rend", broken)
        out = rend.rendctl("upgrade", timeout=60)
        self.assertEqual(out.returncode, 1, out.stdout)
        self.assertIn("failed its check (exit status 127", out.stderr)
        self.assertIn("librocksdb.so.7", rend.read_log())
        self.assertEqual((rend.proc.pid, rend.worker_pids()), (supervisor, workers), "nothing changed")
        self.assertEqual(metric(rend.scrape(), "rend_upgrades_total", result="failed"), 1)
        # Once a good binary is in place, the upgrade goes through.
        self.install("rend")
        out = rend.rendctl("upgrade", timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(rend.proc.pid, supervisor)
        load.stop()
        self.assertEqual((load.failed, load.wrong, load.reconnects), (0, 0, 0), load.samples)


class FallBackTest(ProcessTest):
    """The next image that cannot take the state over executes the previous binary again, handing
    it the state untouched and the reason. Played here with a stand-in previous binary that records
    what it was given."""

    def resume_with(self, state):
        record = os.path.join(self.tmp, "record")
        previous = os.path.join(self.tmp, "previous")
        with open(previous, "w") as f:
            f.write(f"#!/bin/sh\nprintf '%s\\n' \"$@\" > {record}.args\ncat /proc/self/fd/$2 > {record}.state\n")
        os.chmod(previous, 0o755)
        exe_fd = os.open(previous, os.O_RDONLY)
        state_fd = os.memfd_create("state", 0)
        state = dict(state, fallback_exe_fd=exe_fd)
        os.write(state_fd, json.dumps(state).encode())
        try:
            out = subprocess.run([REND, "--resume-fd", str(state_fd)], pass_fds=(exe_fd, state_fd),
                                 capture_output=True, text=True, timeout=30)
        finally:
            os.close(exe_fd)
            os.close(state_fd)
        with open(record + ".args") as f:
            args = f.read().splitlines()
        with open(record + ".state") as f:
            handed = json.load(f)
        return out, args, handed, state

    def test_a_state_naming_a_process_that_is_not_rends_child_goes_back(self):
        stranger = os.getpid()  # exists, but is not a child of the rend being started
        out, args, handed, state = self.resume_with({"format": 1, "config": {}, "workers": [
            {"slot": 0, "pid": stranger, "stats_entry": 0}], "slots": [{"index": 0}]})
        self.assertEqual(args[:2], ["--resume-fd", args[1]])
        self.assertIn("--upgrade-failed", args)
        self.assertIn(f"process {stranger} is not a child of rend", args[args.index("--upgrade-failed") + 1])
        self.assertEqual(handed, state, "the state goes back as the previous image wrote it")
        self.assertIn("going back to the previous one", out.stderr + out.stdout)

    def test_a_state_of_another_format_goes_back(self):
        out, args, handed, state = self.resume_with({"format": 99, "config": {}})
        self.assertIn("format 99", args[args.index("--upgrade-failed") + 1])
        self.assertEqual(handed, state)

    def test_a_state_that_is_not_rends_is_refused(self):
        state_fd = os.memfd_create("state", 0)
        os.write(state_fd, b"not json")
        out = subprocess.run([REND, "--resume-fd", str(state_fd)], pass_fds=(state_fd,), capture_output=True,
                             text=True, timeout=30)
        os.close(state_fd)
        self.assertEqual(out.returncode, 1, out.stdout + out.stderr)
        self.assertIn("not a JSON object", out.stdout + out.stderr)
