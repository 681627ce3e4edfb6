"""rend speaks systemd's notify protocol (Type=notify): READY=1 only once every worker serves,
RELOADING=1 then READY=1 around a reload, STOPPING=1, and WATCHDOG=1 from the supervisor's loop.
The test plays systemd: it owns the NOTIFY_SOCKET datagram socket and reads what rend sends."""
import os
import shutil
import signal
import socket
import time

from rendtest import REND, Client, ProcessTest, Rend, wait_until


class Notifications:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.seen = []  # (time, {field: value}) in arrival order

    def drain(self):
        while True:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                return
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            self.seen.append((time.monotonic(), fields))

    def wait_for(self, field, value, after=0, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.drain()
            for i, (t, fields) in enumerate(self.seen):
                if i >= after and fields.get(field) == value:
                    return i
        raise AssertionError(f"no {field}={value} from rend in {timeout} s; got {self.seen[after:]}")

    def close(self):
        self.sock.close()


class SystemdNotifyTest(ProcessTest):
    def start(self, watchdog_usec=None, binary=None):
        path = os.path.join(self.tmp, "notify.sock")
        notes = Notifications(path)
        self.addCleanup(notes.close)
        env = {"NOTIFY_SOCKET": path}
        if watchdog_usec:
            env["WATCHDOG_USEC"] = str(watchdog_usec)
        rend = Rend(self.tmp, workers=2, env=env, binary=binary)
        self.addCleanup(self._stop_rend, rend)
        rend.start(wait_workers=False)
        return rend, notes

    def test_ready_only_once_every_worker_serves(self):
        rend, notes = self.start()
        ready = notes.wait_for("READY", "1")
        # When READY=1 arrived, every worker was ready and answering.
        self.assertTrue(rend.all_workers_ready())
        c = Client(rend.port)
        self.assertTrue(c.call(b"version\r\n").startswith(b"VERSION"))
        c.close()
        # The STATUS line counts the workers serving when READY=1 was sent: both, not fewer.
        self.assertIn("with 2 workers", notes.seen[ready][1].get("STATUS", ""))
        self.assertNotIn("READY", {k for _, f in notes.seen[:ready] for k in f}, "READY=1 only once")

    def test_reload_and_stop(self):
        rend, notes = self.start()
        first = notes.wait_for("READY", "1")
        self.assertEqual(rend.rendctl("reload").returncode, 0)
        reloading = notes.wait_for("RELOADING", "1", after=first + 1)
        self.assertIn("MONOTONIC_USEC", notes.seen[reloading][1])
        notes.wait_for("READY", "1", after=reloading + 1)
        rend.signal(signal.SIGTERM)
        notes.wait_for("STOPPING", "1", after=reloading + 1)
        rend.proc.wait(timeout=30)

    def test_watchdog_keep_alives(self):
        rend, notes = self.start(watchdog_usec=400000)
        notes.wait_for("READY", "1")
        wait_until(lambda: notes.drain() or sum(1 for _, f in notes.seen if f.get("WATCHDOG") == "1") >= 5, 10,
                   what="five keep-alives (every 200 ms)")

    def test_not_ready_while_no_worker_can_serve(self):
        # Workers that exit with rend's fatal status (a config they cannot use) are left down:
        # settled, but serving nothing, so systemd must not hear READY=1.
        bindir = os.path.join(self.tmp, "bin")
        os.makedirs(bindir)
        shutil.copy(REND, bindir)  # the supervisor starts the rend-worker next to its own binary
        with open(os.path.join(bindir, "rend-worker"), "w") as f:
            f.write("#!/bin/sh\necho \"rend-worker: bad configuration: (test)\" >&2\nexit 78\n")
        os.chmod(os.path.join(bindir, "rend-worker"), 0o755)
        rend, notes = self.start(binary=os.path.join(bindir, "rend"))
        notes.wait_for("STATUS", "no worker serving: see rend's log")
        self.assertEqual(rend.read_log().count("not restarting it"), 2)
        notes.drain()
        self.assertNotIn("1", [f.get("READY") for _, f in notes.seen])
