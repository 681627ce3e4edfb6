"""Lifecycle operations no client can notice: a departing worker hands each client connection to
another worker at a request boundary (socket and unread input), so clients that never retry see
no failure across restarts, reloads and scaling, on both ports and both protocols."""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

from rendtest import Client, ProcessTest, Rend, free_port, metric, wait_until
from strict_load import StrictLoad


class ZeroLossTest(ProcessTest):
    def start_tiered(self, workers=2):
        self.batch_port = free_port()
        return self.start_rend(workers=workers, config={
            "l2": {"enabled": True, "data_dir": os.path.join(self.tmp, "l2"),
                   "address": os.path.join(self.tmp, "run", "rend-l2.sock")},
            "listen": {"batch_port": self.batch_port},
        })

    def run_step(self, rend, load, what, *command):
        """Runs a rendctl command under the load; returns how many connections were handed over."""
        before = load.ok
        pids = set(rend.worker_pids().values())
        handed = metric(rend.scrape(), "rend_client_connections_handed_over_total")
        out = rend.rendctl(*command, timeout=60)
        self.assertEqual(out.returncode, 0, f"{what}: {out.stdout}{out.stderr}")
        # Every departing worker has finished handing over and exited.
        wait_until(lambda: len(rend.worker_pids()) == rend.config["workers"], 30, what=f"{what}: workers settled")
        time.sleep(0.5)
        if command[0] != "scale":
            self.assertFalse(pids & set(rend.worker_pids().values()), f"{what}: every worker was replaced")
        self.assertGreater(load.ok, before + 100, f"{what}: the load kept being served")
        handed = metric(rend.scrape(), "rend_client_connections_handed_over_total") - handed
        print(f"after {what}: {load.summary()}, {handed:.0f} connections handed over")
        return handed

    def test_strict_clients_see_nothing_of_restart_reload_and_scaling(self):
        rend = self.start_tiered()
        load = StrictLoad([rend.port, self.batch_port], connections=16).start()
        self.addCleanup(load.stop)
        time.sleep(1.0)
        self.assertEqual((load.failed, load.wrong), (0, 0), load.samples)
        # Every worker leaves: all 16 connections move (sums over slots still in use).
        self.assertEqual(self.run_step(rend, load, "restart", "restart"), 16)
        rend.config["l1"]["connections"] = 3
        rend.write_config(rend.config)
        self.assertEqual(self.run_step(rend, load, "reload", "reload"), 16)
        rend.config["workers"] = 4
        self.run_step(rend, load, "scale 4", "scale", "4")
        rend.config["workers"] = 1
        self.run_step(rend, load, "scale 1", "scale", "1")
        self.assertEqual(self.run_step(rend, load, "restart-worker 0", "restart-worker", "0"), 16)
        c = self.client(rend.port)
        self.assertEqual(c.stats()["curr_connections"], "17", "16 strict clients and this one, counted once")
        load.stop()
        print(f"strict clients: {load.summary()}")
        self.assertEqual((load.failed, load.wrong), (0, 0), load.samples)
        self.assertGreater(load.ok, 2000)
        self.assertEqual(load.reconnects, 0)

    def test_a_half_sent_value_and_a_long_pipeline_move_intact(self):
        rend = self.start_tiered()
        half = self.client(rend.port, timeout=20)
        half.send(b"set half 0 0 10\r\nhello")
        # A pipeline of 100k requests, written while rend is being restarted, read back in order.
        piped = self.client(rend.port, timeout=60)
        n = 100_000
        requests = b"".join(b"set p%d 0 0 %d\r\n%d\r\nget p%d\r\n" % (i % 1000, len(b"%d" % i), i, i % 1000)
                            for i in range(n))
        writer = threading.Thread(target=piped.send, args=(requests,), daemon=True)
        writer.start()
        time.sleep(0.05)
        before = rend.worker_pids()
        out = rend.rendctl("restart", timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        wait_until(lambda: not set(before.values()) & set(rend.worker_pids().values())
                   and len(rend.worker_pids()) == 2, 30, what="both workers replaced")
        expected = b"".join(b"STORED\r\nVALUE p%d 0 %d\r\n%d\r\nEND\r\n" % (i % 1000, len(b"%d" % i), i)
                            for i in range(n))
        got = piped.read_exact(len(expected))
        writer.join(30)
        self.assertEqual(got, expected, "every request answered once, in order")
        half.send(b"world\r\n")
        self.assertEqual(half.read_line(), b"STORED\r\n")
        self.assertEqual(half.get(b"half"), b"helloworld")
        self.assertIn("hands its clients over", rend.read_log())

    def test_stop_still_closes_clients_between_requests(self):
        # Without a successor (SIGTERM to rend), a worker answers what it read and closes.
        rend = self.start_tiered()
        c = self.client(rend.port, timeout=20)
        c.send(b"".join(b"set s%d 0 0 1\r\nx\r\n" % i for i in range(2000)))
        self.assertEqual(c.read_line(), b"STORED\r\n")
        rend.signal(signal.SIGTERM)
        self.assertEqual(c.read_exact(8 * 1999), b"STORED\r\n" * 1999)
        self.assertEqual(c.read_available(1.0), b"<CLOSED>")
        self.assertEqual(rend.proc.wait(20), 0)


class MemcachedWarmRestartTest(ProcessTest):
    """memcached restarts (planned) without errors for clients and without emptying L1."""

    def setUp(self):
        super().setUp()
        # memcached's memory file belongs on a RAM filesystem: rend uses one only there.
        self.shm = tempfile.mkdtemp(prefix="rendtest-", dir="/dev/shm")
        self.addCleanup(shutil.rmtree, self.shm, ignore_errors=True)

    def start_warm(self, tiered=True):
        config = {"run_dir": os.path.join(self.shm, "run"),
                  "control": {"socket": os.path.join(self.shm, "run", "rend.ctl")},
                  "l1": {"address": os.path.join(self.shm, "run", "memcached.sock")}}
        if tiered:
            self.batch_port = free_port()
            config["l2"] = {"enabled": True, "data_dir": os.path.join(self.tmp, "l2"),
                            "address": os.path.join(self.shm, "run", "rend-l2.sock")}
            config["listen"] = {"batch_port": self.batch_port}
        rend = Rend(self.tmp, workers=2, memory_mb=64, config=config)
        rend.control_socket = config["control"]["socket"]
        self.addCleanup(self._stop_rend, rend)
        rend.start()
        self.assertIn(b"-e", b" ".join(rend.children()[rend.memcached_pid()]), "memcached runs with a memory file")
        return rend

    def l1_keys(self, rend, keys):
        """How many of `keys` memcached itself holds (any value: rend's envelope or a tombstone)."""
        c = Client(path=rend.config["l1"]["address"], timeout=10)
        try:
            found = 0
            for i in range(0, len(keys), 100):
                reply = c.call(b"get " + b" ".join(keys[i:i + 100]) + b"\r\n")
                found += reply.count(b"VALUE ")
            return found
        finally:
            c.close()

    def restart_memcached_under_load(self, rend, ports):
        if rend.config.get("l2", {}).get("enabled"):
            # For its first L1 timeout + 1 s, rend-l2 flags every write as raced, and the worker
            # buries its L1 copy once the race window has passed (docs/design.md, "Races between
            # workers"): keys written then would leave L1 with or without a restart.
            time.sleep(2.5)
        before = [b"warm-%d" % i for i in range(2000)]
        c = self.client(rend.port)
        c.send(b"".join(b"set %s 0 0 3\r\nold\r\n" % k for k in before))
        self.assertEqual(c.read_exact(8 * len(before)), b"STORED\r\n" * len(before))
        self.assertEqual(self.l1_keys(rend, before), len(before))
        load = StrictLoad(ports, connections=16).start()
        self.addCleanup(load.stop)
        # Another client rewrites the first 500 keys all through the restart.
        rewritten = before[:500]
        stop = threading.Event()
        errors = []

        def rewrite():
            w = Client(rend.port, timeout=15)
            while not stop.is_set():
                for k in rewritten:
                    if w.set(k, b"new") != b"STORED\r\n":
                        errors.append(k)
            w.close()

        writer = threading.Thread(target=rewrite, daemon=True)
        writer.start()
        time.sleep(0.5)
        old_pid = rend.memcached_pid()
        started = time.monotonic()
        out = rend.rendctl("restart-memcached", timeout=60)
        took = time.monotonic() - started
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertNotEqual(rend.memcached_pid(), old_pid, "memcached was restarted")
        time.sleep(0.5)
        stop.set()
        writer.join(30)
        load.stop()
        print(f"restart-memcached took {took:.2f}s; strict clients: {load.summary()}")
        self.assertEqual((load.failed, load.wrong), (0, 0), load.samples)
        self.assertEqual(errors, [])
        kept = self.l1_keys(rend, before[500:])
        probe = Client(path=rend.config["l1"]["address"], timeout=10)
        mc = probe.stats()
        probe.close()
        print(f"L1 holds {kept} of {len(before) - 500} keys written before the restart; memcached: "
              f"{ {k: mc.get(k) for k in ('curr_items', 'cmd_flush', 'evictions', 'get_expired', 'uptime')} }")
        self.assertGreaterEqual(kept, 0.95 * (len(before) - 500))
        # Nothing written meanwhile reads old, through rend or from L1 itself.
        for k in rewritten:
            self.assertEqual(c.get(k), b"new", k)
        direct = Client(path=rend.config["l1"]["address"], timeout=10)
        self.addCleanup(direct.close)
        for k in rewritten:
            self.assertNotIn(b"old\r\n", direct.call(b"get " + k + b"\r\n"), k)
        self.assertIn("memcached restarted", rend.read_log())

    def test_restart_memcached_tiered(self):
        rend = self.start_warm(tiered=True)
        self.restart_memcached_under_load(rend, [rend.port, self.batch_port])

    def test_restart_memcached_l1_only(self):
        rend = self.start_warm(tiered=False)
        self.restart_memcached_under_load(rend, [rend.port])

    def test_reload_of_a_memcached_setting_restarts_it_warm(self):
        rend = self.start_warm(tiered=False)
        c = self.client(rend.port)
        keys = [b"reload-%d" % i for i in range(1000)]
        for k in keys:
            self.assertEqual(c.set(k, b"v"), b"STORED\r\n")
        old_pid = rend.memcached_pid()
        rend.config["memcached"]["threads"] = 3
        rend.write_config(rend.config)
        out = rend.rendctl("reload")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertNotEqual(rend.memcached_pid(), old_pid)
        self.assertIn(b"3", rend.children()[rend.memcached_pid()][rend.children()[rend.memcached_pid()].index(b"-t") + 1])
        self.assertGreaterEqual(self.l1_keys(rend, keys), 950)

    def test_a_full_restart_of_rend_keeps_l1(self):
        rend = self.start_warm(tiered=False)
        c = Client(rend.port)
        keys = [b"full-%d" % i for i in range(1000)]
        for k in keys:
            self.assertEqual(c.set(k, b"v"), b"STORED\r\n")
        c.close()
        rend.stop()
        self.assertTrue(os.path.exists(os.path.join(self.shm, "run", "memcached.memory.meta")),
                        "memcached saved its index on the way out")
        rend.start()
        self.assertGreaterEqual(self.l1_keys(rend, keys), 950)


def held_listener(test):
    """A listening socket as systemd's rend.socket holds it, closed when the test ends."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1024)
    test.addCleanup(s.close)
    return s


class SocketActivationTest(ProcessTest):
    """With systemd socket activation, clients that connect while rend is stopped are not refused:
    they wait in the backlog of the socket systemd holds and are served once rend is back. The test
    plays systemd's part: it holds the sockets and starts rend with LISTEN_FDS, twice."""

    def listener(self):
        return held_listener(self)

    def start_activated(self, rend, sockets):
        # fds 3, 4, ... in rend, and LISTEN_PID set to rend's own pid, as systemd does.
        moves = " ".join(f"{3 + i}<&{s.fileno()}" for i, s in enumerate(sockets))
        script = (f'exec {moves}; export LISTEN_PID=$$ LISTEN_FDS={len(sockets)}; '
                  f'exec "$0" --config "$1"')
        rend.log = open(rend.log_path, "ab")
        rend.proc = subprocess.Popen(["sh", "-c", script, rend.binary, rend.config_path], stdout=rend.log,
                                     stderr=rend.log, start_new_session=True, env=rend.env,
                                     pass_fds=[s.fileno() for s in sockets])
        wait_until(lambda: len(rend.worker_pids()) == 2 and rend.all_workers_ready(), 20, what="workers ready")

    def test_connections_during_a_stop_wait_and_are_served(self):
        main, batch = self.listener(), self.listener()
        port, batch_port = main.getsockname()[1], batch.getsockname()[1]
        rend = Rend(self.tmp, workers=2, config={
            "listen": {"port": port, "batch_port": batch_port},
            "l2": {"enabled": True, "data_dir": os.path.join(self.tmp, "l2"),
                   "address": os.path.join(self.tmp, "run", "rend-l2.sock")}})
        self.addCleanup(self._stop_rend, rend)
        self.start_activated(rend, [main, batch])
        self.assertIn("socket activation: systemd holds the main port the batch port", rend.read_log())
        c = Client(port)
        self.assertEqual(c.set(b"k", b"before"), b"STORED\r\n")
        c.close()
        rend.stop()
        # rend is gone; the port is still there.
        waiting = []
        for i in range(20):
            w = Client(port if i % 2 == 0 else batch_port, timeout=30)
            w.send(b"set wait-%d 0 0 2\r\nok\r\nget k\r\n" % i)
            waiting.append(w)
        time.sleep(0.5)
        self.start_activated(rend, [main, batch])
        for i, w in enumerate(waiting):
            self.assertEqual(w.read_line(), b"STORED\r\n", f"client {i}")
            self.assertEqual(w.read_until(b"END\r\n"), b"VALUE k 0 6\r\nbefore\r\nEND\r\n")
            w.close()
        self.assertNotIn("cannot listen", rend.read_log())


class FakeSystemd:
    """systemd's part in a stop and start of rend: the notify socket (NOTIFY_SOCKET) with its file
    descriptor store (FDSTORE=1 / FDSTOREREMOVE=1 by FDNAME), and the start of rend with the sockets
    it holds and the stored descriptors (LISTEN_FDS, LISTEN_FDNAMES, LISTEN_PID)."""

    def __init__(self, tmp):
        self.path = os.path.join(tmp, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.store = []  # (name, fd), in the order stored
        self.lock = threading.Lock()
        self.running = True
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while self.running:
            try:
                msg, fds, _, _ = socket.recv_fds(self.sock, 65536, 64)
            except (socket.timeout, OSError):
                continue
            fields = dict(line.split("=", 1) for line in msg.decode().splitlines() if "=" in line)
            with self.lock:
                if fields.get("FDSTORE") == "1":
                    self.store += [(fields.get("FDNAME", "stored"), fd) for fd in fds]
                    fds = []
                if fields.get("FDSTOREREMOVE") == "1":
                    for name, fd in [e for e in self.store if e[0] == fields.get("FDNAME")]:
                        os.close(fd)
                        self.store.remove((name, fd))
            for fd in fds:
                os.close(fd)

    def names(self):
        with self.lock:
            return [name for name, _ in self.store]

    def start(self, rend, listeners):
        """Starts rend with the listening sockets first (named rend.socket), then the store."""
        with self.lock:
            passed = [(s.fileno(), "rend.socket") for s in listeners] + [(fd, name) for name, fd in self.store]

        def move_to_3():
            for i, (fd, _) in enumerate(passed):
                os.dup2(fd, 500 + i)
            for i in range(len(passed)):
                os.dup2(500 + i, 3 + i)
                os.close(500 + i)

        names = ":".join(name for _, name in passed)
        script = (f'export LISTEN_PID=$$ LISTEN_FDS={len(passed)} LISTEN_FDNAMES={names}; '
                  f'exec "$0" --config "$1"')
        rend.log = open(rend.log_path, "ab")
        rend.proc = subprocess.Popen(["sh", "-c", script, rend.binary, rend.config_path], stdout=rend.log,
                                     stderr=rend.log, start_new_session=True, close_fds=False,
                                     preexec_fn=move_to_3, env=dict(rend.env, NOTIFY_SOCKET=self.path))
        wait_until(lambda: len(rend.worker_pids()) == 2 and rend.all_workers_ready(), 20, what="workers ready")

    def close(self):
        self.running = False
        self.thread.join()
        self.sock.close()
        for _, fd in self.store:
            os.close(fd)


class RestartKeepsConnectionsTest(ProcessTest):
    """Under systemd, a stop and start of rend (systemctl restart) keeps every open client
    connection: the workers hand them to the supervisor at request boundaries, which keeps them in
    systemd's file descriptor store with what the workers had read but not parsed, and the next rend
    takes them back. Clients that never retry see nothing."""

    def test_strict_clients_see_nothing_of_a_restart_of_rend(self):
        main, batch = held_listener(self), held_listener(self)
        port, batch_port = main.getsockname()[1], batch.getsockname()[1]
        systemd = FakeSystemd(self.tmp)
        self.addCleanup(systemd.close)
        rend = Rend(self.tmp, workers=2, config={
            "listen": {"port": port, "batch_port": batch_port},
            "l2": {"enabled": True, "data_dir": os.path.join(self.tmp, "l2"),
                   "address": os.path.join(self.tmp, "run", "rend-l2.sock")}})
        self.addCleanup(self._stop_rend, rend)
        systemd.start(rend, [main, batch])
        load = StrictLoad([port, batch_port], connections=16).start()
        self.addCleanup(load.stop)
        time.sleep(1.0)
        half = Client(port, timeout=30)
        self.addCleanup(half.close)
        half.send(b"set half 0 0 10\r\nhello")  # a value half sent when rend stops
        time.sleep(0.2)
        pid = rend.proc.pid
        before = load.ok
        rend.stop()
        self.assertEqual(rend.proc.returncode, 0, rend.read_log()[-3000:])
        names = systemd.names()
        self.assertEqual(sum(n.startswith("rend-client-") for n in names), 17, names)
        self.assertEqual(sum(n.startswith("rend-handoff-") for n in names), 1, names)
        half.send(b"world\r\nget half\r\n")  # sent while rend is down
        systemd.start(rend, [main, batch])
        self.assertNotEqual(rend.proc.pid, pid)
        self.assertEqual(half.read_until(b"END\r\n"), b"STORED\r\nVALUE half 0 10\r\nhelloworld\r\nEND\r\n")
        wait_until(lambda: systemd.names() == [], 10, what="the store emptied")
        time.sleep(1.0)
        load.stop()
        print(f"strict clients across a stop and start: {load.summary()}")
        self.assertGreater(load.ok, before + 100, "the load went on after the start")
        self.assertEqual((load.failed, load.wrong, load.reconnects), (0, 0, 0), load.samples)
        self.assertIn("17 of 17 client connections kept by systemd", rend.read_log())
