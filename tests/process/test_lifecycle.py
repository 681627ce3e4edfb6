"""The supervisor's promises, with real processes: crash restarts, graceful stop, reload, and
recovery from a memcached restart."""
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import threading
import time

from rendtest import REND, Client, ProcessTest, Rend, free_port, wait_until


class VerifyingLoad:
    """Clients doing set-then-get with random values, checking every reply.

    A connection the server closes *between* requests (EOF before any byte of a reply) is
    reopened and the request retried: memcached clients do this, and it is what a worker restart
    or drain may do. A reply cut off in the middle, an error reply or a wrong value is a failure.
    """

    def __init__(self, port, clients=4):
        self.port = port
        self.clients = clients
        self.stop_flag = threading.Event()
        self.ok = 0
        self.reconnects = 0
        self.failures = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True) for i in range(clients)]

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def stop(self):
        self.stop_flag.set()
        for t in self.threads:
            t.join(30)

    def fail(self, what):
        with self.lock:
            if len(self.failures) < 20:
                self.failures.append(what)

    def request(self, conn_holder, data, reader):
        for attempt in range(50):
            c = conn_holder[0]
            try:
                if c is None:
                    c = conn_holder[0] = Client(self.port, timeout=10)
                c.send(data)
                return reader(c)
            except (ConnectionError, BrokenPipeError, ConnectionResetError) as e:
                partial = c is not None and len(c.buf) > 0
                if partial:
                    self.fail(f"reply cut off: {e} after {c.buf[:80]!r}")
                    return None
                with self.lock:
                    self.reconnects += 1
                if c is not None:
                    c.close()
                conn_holder[0] = None
                time.sleep(0.01)
            except socket.timeout:
                self.fail("timeout waiting for a reply")
                return None
        self.fail("could not reconnect")
        return None

    def run(self, index):
        rng = random.Random(index)
        holder = [None]
        i = 0
        while not self.stop_flag.is_set():
            key = b"load-%d-%d" % (index, i % 200)
            value = os.urandom(rng.randint(1, 2000)).hex().encode()
            stored = self.request(holder, b"set %s 0 0 %d\r\n%s\r\n" % (key, len(value), value),
                                  lambda c: c.read_line())
            if stored is None:
                continue
            if stored != b"STORED\r\n":
                self.fail(f"set {key!r}: {stored!r}")
                continue
            reply = self.request(holder, b"get %s\r\n" % key, lambda c: c.read_line() + c.read_until(b"END\r\n"))
            if reply is None:
                continue
            expected = b"VALUE %s 0 %d\r\n%s\r\nEND\r\n" % (key, len(value), value)
            if reply != expected:
                self.fail(f"get {key!r}: wrong reply {reply[:100]!r}")
                continue
            with self.lock:
                self.ok += 1
            i += 1
        if holder[0] is not None:
            holder[0].close()


class LifecycleTest(ProcessTest):
    def test_killed_worker_is_replaced_within_a_second_and_load_continues(self):
        rend = self.start_rend(workers=2)
        load = VerifyingLoad(rend.port).start()
        self.addCleanup(load.stop)
        time.sleep(0.5)
        before = rend.worker_pids()
        victim = before[0]
        ok_before = load.ok
        killed_at = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        # Connections opened while the slot is empty queue on the supervisor's socket: none refused.
        fresh = [Client(rend.port, timeout=10) for _ in range(16)]
        replacement = wait_until(lambda: rend.worker_pids().get(0) not in (None, victim) and rend.worker_pids()[0],
                                 5, what="a new worker in slot 0")
        elapsed = time.monotonic() - killed_at
        for c in fresh:
            self.assertEqual(c.call(b"version\r\n")[:8], b"VERSION ")
            c.close()
        time.sleep(1.0)
        load.stop()
        print(f"replacement pid {replacement} after {elapsed:.3f}s; ok {load.ok}, reconnects {load.reconnects}")
        self.assertLess(elapsed, 1.0, "the slot is refilled within a second")
        self.assertEqual(load.failures, [])
        self.assertGreater(load.ok, ok_before + 50, "the load kept being served")
        self.assertEqual(rend.worker_pids()[1], before[1], "the other worker was untouched")

    def test_sigterm_answers_every_request_in_flight(self):
        mc = self.start_memcached()
        rend = self.start_rend(workers=2, l1_address=mc.address)
        clients = [self.client(rend.port, timeout=20) for _ in range(16)]
        per_client = 2000
        for n, c in enumerate(clients):
            c.send(b"".join(b"set drain-%d-%d 0 0 5\r\nvalue\r\n" % (n, i) for i in range(per_client)))
        # Half the clients have seen a first reply; the rest may not even have been read yet.
        for c in clients[:8]:
            self.assertEqual(c.read_line(), b"STORED\r\n")
        rend.signal(signal.SIGTERM)
        for n, c in enumerate(clients):
            expected = per_client - 1 if n < 8 else per_client
            got = c.read_exact(len(b"STORED\r\n") * expected)
            self.assertEqual(got, b"STORED\r\n" * expected, f"client {n}")
            self.assertEqual(c.read_available(1.0), b"<CLOSED>", "closed after the last reply")
        self.assertEqual(rend.proc.wait(20), 0)
        direct = self.client(mc.port)
        self.assertEqual(direct.get(b"drain-15-1999"), b"value")

    def test_memcached_restart_gives_server_error_then_recovers(self):
        rend = self.start_rend(workers=1)
        c = self.client(rend.port)
        self.assertEqual(c.set(b"k", b"v"), b"STORED\r\n")
        workers = rend.worker_pids()
        old_mc = rend.memcached_pid()
        os.kill(old_mc, signal.SIGKILL)
        replies = set()
        deadline = time.monotonic() + 10
        recovered = False
        while time.monotonic() < deadline:
            r = c.set(b"k2", b"v2")
            replies.add(r)
            if r == b"STORED\r\n" and rend.memcached_pid() not in (None, old_mc):
                recovered = True
                break
            self.assertIn(r, (b"STORED\r\n", b"SERVER_ERROR backend unavailable\r\n"))
            time.sleep(0.005)
        self.assertTrue(recovered, f"recovered; replies seen {replies}")
        self.assertIn(b"SERVER_ERROR backend unavailable\r\n", replies, "errors were reported meanwhile")
        self.assertEqual(c.get(b"k2"), b"v2")
        self.assertEqual(rend.worker_pids(), workers, "workers were not restarted")

    def test_sighup_rolls_workers_onto_new_config_without_failed_requests(self):
        rend = self.start_rend(workers=2)
        load = VerifyingLoad(rend.port).start()
        self.addCleanup(load.stop)
        time.sleep(0.5)
        before = rend.worker_pids()
        rend.config["l1"]["connections"] = 3
        rend.write_config(rend.config)
        rend.signal(signal.SIGHUP)
        wait_until(lambda: all(rend.worker_pids().get(s) not in (None, before[s]) for s in before), 15,
                   what="both workers replaced")
        time.sleep(1.0)
        load.stop()
        print(f"ok {load.ok}, reconnects {load.reconnects}")
        self.assertEqual(load.failures, [])
        self.assertGreater(load.ok, 100)
        self.assertIn("reloading", rend.read_log())
        # The new workers run the new config.
        for pid in rend.worker_pids().values():
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                self.assertIn(b'"connections":3', f.read())

    def test_invalid_reload_changes_nothing(self):
        rend = self.start_rend(workers=2)
        before = rend.worker_pids()
        rend.config["l1"]["connections"] = 0
        rend.write_config(rend.config)
        rend.signal(signal.SIGHUP)
        wait_until(lambda: "reload rejected" in rend.read_log(), 5, what="the rejection")
        self.assertIn("l1.connections: must be between 1 and 64", rend.read_log())
        time.sleep(0.3)
        self.assertEqual(rend.worker_pids(), before)
        self.assertEqual(self.client(rend.port).set(b"a", b"b"), b"STORED\r\n")

    def test_reload_of_a_restart_only_key_is_refused_with_its_name(self):
        rend = self.start_rend(workers=2)
        before = rend.worker_pids()
        rend.config["listen"]["backlog"] = 128
        rend.config["l1"]["connections"] = 3  # reloadable, but the whole reload is refused
        rend.write_config(rend.config)
        out = rend.rendctl("reload")
        self.assertEqual(out.returncode, 1, out.stdout + out.stderr)
        self.assertIn("listen.backlog: cannot change on reload", out.stdout + out.stderr)
        self.assertEqual(rend.worker_pids(), before)

    def test_unix_socket_listener(self):
        path = os.path.join(self.tmp, "rend.sock")
        rend = self.start_rend(workers=2, config={"listen": {"unix_socket": path}})
        c = Client(path=path)
        self.addCleanup(c.close)
        self.assertEqual(c.set(b"u", b"x"), b"STORED\r\n")
        self.assertEqual(self.client(rend.port).get(b"u"), b"x")


class FatalExitTest(ProcessTest):
    """A child that exits with rend's fatal status (common/exit_codes.h: it cannot run with this
    configuration) is reported and left down, not restarted in a loop; a reload gives a worker
    slot its chance again."""

    def test_children_that_cannot_use_their_configuration_are_left_down(self):
        bindir = os.path.join(self.tmp, "bin")
        os.makedirs(bindir)
        shutil.copy(REND, bindir)  # the supervisor starts the rend-worker next to its own binary
        fatal = "#!/bin/sh\necho \"$(basename $0): bad configuration: (test)\" >&2\nexit 78\n"
        for name in ("rend-worker", "rend-l2"):
            with open(os.path.join(bindir, name), "w") as f:
                f.write(fatal)
            os.chmod(os.path.join(bindir, name), 0o755)
        rend = Rend(self.tmp, workers=2, binary=os.path.join(bindir, "rend"), config={
            "l2": {"enabled": True, "data_dir": os.path.join(self.tmp, "l2"),
                   "address": os.path.join(self.tmp, "run", "rend-l2.sock")},
            "listen": {"batch_port": free_port()},
            "supervisor": {"restart_backoff_min_ms": 10, "stop_timeout_ms": 10000},
        })
        self.addCleanup(rend.stop)
        rend.start(wait_workers=False)
        wait_until(lambda: rend.read_log().count("not restarting it") >= 3, 20,
                   what="two worker slots and rend-l2 reported as left down")
        time.sleep(1.0)  # a restart loop at 10 ms backoff would have run many times by now
        status = json.loads(rend.rendctl("--json", "status").stdout)
        self.assertEqual([w["state"] for w in status["workers"]], ["failed", "failed"])
        self.assertEqual([w["restarts"] for w in status["workers"]], [0, 0])
        self.assertEqual((status["l2"]["state"], status["l2"]["restarts"]), ("failed", 0))
        self.assertEqual(rend.read_log().count("cannot run with this configuration"), 3, rend.read_log())
        # A usable worker binary and a reload: the slots start again and serve (L1 alone answers
        # reads while rend-l2 is down).
        os.remove(os.path.join(bindir, "rend-worker"))
        shutil.copy(os.path.join(os.path.dirname(REND), "..", "worker", "rend-worker"), bindir)
        self.assertEqual(rend.rendctl("reload").returncode, 0)
        wait_until(lambda: len(rend.worker_pids()) == 2, 15, what="workers after the reload")
        c = self.client(rend.port)
        wait_until(lambda: c.call(b"get nothing\r\n") == b"END\r\n", 10, what="a worker answering")
        # Each failed slot started once, on the new configuration: the reload's roll does not
        # replace them again.
        wait_until(lambda: json.loads(rend.rendctl("--json", "status").stdout)["supervisor"]["state"] == "running",
                   15, what="the reload to settle")
        self.assertNotIn("replaced: pid", rend.read_log())


class SecondInstanceTest(ProcessTest):
    def test_a_second_rend_cannot_take_the_port_or_control_socket(self):
        first = self.start_rend(workers=1)
        cfg = json.loads(json.dumps(first.config))
        cfg["metrics"]["listen"] = f"127.0.0.1:{free_port()}"
        cfg["run_dir"] = os.path.join(self.tmp, "run2")
        cfg["l1"]["address"] = os.path.join(self.tmp, "run2", "memcached.sock")
        path = os.path.join(self.tmp, "second.json")
        with open(path, "w") as f:
            json.dump(cfg, f)
        out = subprocess.run([REND, "--config", path], capture_output=True, text=True, timeout=20)
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("already in use", out.stderr)
        cfg["listen"]["port"] = free_port()
        with open(path, "w") as f:
            json.dump(cfg, f)
        out = subprocess.run([REND, "--config", path], capture_output=True, text=True, timeout=20)
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("in use by a running rend", out.stderr)
        self.assertEqual(first.rendctl("status").returncode, 0, "the first rend still owns its socket")


class CheckConfigTest(ProcessTest):
    def check(self, text):
        path = os.path.join(self.tmp, "c.json")
        with open(path, "w") as f:
            f.write(text)
        return subprocess.run([REND, "--check-config", path], capture_output=True, text=True, timeout=10)

    def test_valid(self):
        out = self.check('{"workers": 3, "l1": {"connections": 4}}')
        self.assertEqual(out.returncode, 0, out.stderr)

    def test_errors_name_the_key(self):
        cases = {
            '{"wrkers": 3}': "wrkers: unknown option",
            '{"l1": {"connections": 0}}': "l1.connections: must be between 1 and 64",
            '{"listen": {"port": "11211"}}': "listen.port: must be an integer",
            '{"listen": 5}': "listen: must be an object",
            '{"memcached": {"extra_args": [1]}}': "memcached.extra_args: must be an array of strings",
            '{"workers": 2,}': "invalid JSON",
            '{"workers": 3e33333}': "number overflow",  # found by fuzzing: it used to abort rend
        }
        for text, message in cases.items():
            out = self.check(text)
            self.assertNotEqual(out.returncode, 0, text)
            self.assertIn(message, out.stderr, text)
