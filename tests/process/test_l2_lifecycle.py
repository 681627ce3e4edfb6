"""rend-l2 as a process: readiness, sockets, config, graceful stop, restart with the same data.

Also home of L2Server / L2ProcessTest, the helpers the other test_l2_*.py files import: rend-l2
started on its own (no supervisor) with a temp data dir, a unix socket and a free TCP port.
"""
import json
import os
import select
import signal
import socket
import struct
import subprocess
import time

from rendtest import BUILD_DIR, Client, ProcessTest, binary_request, free_port, read_binary_response, wait_until

L2_BINARY = os.path.join(BUILD_DIR, "l2", "rend-l2")
MiB = 1024 * 1024


class L2Server:
    """One rend-l2 process. stop()/kill() are safe to call twice; nothing outlives the test."""

    def __init__(self, tmpdir, max_bytes=None, tcp=True, data_dir=None, config=None, threads=None, name="l2",
                 extra_args=()):
        self.tmpdir = tmpdir
        self.data_dir = data_dir or os.path.join(tmpdir, name + "-data")
        self.socket = os.path.join(tmpdir, name + ".sock")
        self.port = free_port() if tcp else None
        self.max_bytes = max_bytes
        self.threads = threads
        self.extra_args = list(extra_args)
        self.config_path = None
        if config is not None:
            self.config_path = os.path.join(tmpdir, name + ".json")
            with open(self.config_path, "w") as f:
                json.dump(config, f)
        self.log_path = os.path.join(tmpdir, name + ".log")
        self.proc = None
        self.log = None

    def args(self, ready_fd):
        args = [L2_BINARY, "--ready-fd", str(ready_fd)]
        if self.config_path:
            args += ["--config", self.config_path]
        else:
            args += ["--socket", self.socket, "--data-dir", self.data_dir]
        if self.max_bytes:
            args += ["--max-bytes", str(self.max_bytes)]
        if self.port:
            args += ["--port", str(self.port)]
        if self.threads:
            args += ["--threads", str(self.threads)]
        return args + self.extra_args

    def start(self, timeout=20):
        """Starts rend-l2 and waits for "ready" on the ready fd (the supervisor's protocol)."""
        self.log = open(self.log_path, "ab")
        r, w = os.pipe()
        try:
            self.proc = subprocess.Popen(self.args(w), stdout=self.log, stderr=self.log, pass_fds=(w,),
                                         start_new_session=True)
        finally:
            os.close(w)
        try:
            ready, _, _ = select.select([r], [], [], timeout)
            got = os.read(r, 64) if ready else b""
        finally:
            os.close(r)
        if got != b"ready\n":
            self.kill()
            raise AssertionError(f"rend-l2 not ready ({got!r}, exit {self.proc.poll()}):\n{self.read_log()}")
        return self

    def read_log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def stop(self, timeout=30):
        """SIGTERM and wait; returns the exit code (SIGKILL after `timeout`)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._close_log()
        return self.proc.returncode

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
        self._close_log()

    def _close_log(self):
        if self.log:
            self.log.close()
            self.log = None

    def client(self, timeout=10.0):
        return Client(self.port, timeout=timeout)

    def unix_client(self, timeout=10.0):
        return Client(path=self.socket, timeout=timeout)


class L2ProcessTest(ProcessTest):
    """ProcessTest plus rend-l2: every server started is stopped, its log shown on failure."""

    def start_l2(self, **kw):
        server = L2Server(self.tmp, **kw)
        self.addCleanup(self._stop_l2, server)
        return server.start()

    def _stop_l2(self, server):
        server.kill()
        outcome = getattr(self, "_outcome", None)
        failed = outcome is not None and not getattr(outcome, "success", True)
        if failed or os.environ.get("REND_TEST_VERBOSE"):
            print(f"\n---- rend-l2 log ({server.log_path}) ----\n{server.read_log()[-6000:]}")

    def l2_client(self, server, unix=False, timeout=10.0):
        c = server.unix_client(timeout) if unix else server.client(timeout)
        self.addCleanup(c.close)
        return c


def stats_of(client):
    return client.stats()


class L2LifecycleTest(L2ProcessTest):
    def test_ready_fd_then_both_listeners_serve(self):
        l2 = self.start_l2()
        u = self.l2_client(l2, unix=True)
        t = self.l2_client(l2)
        self.assertEqual(u.set(b"k", b"via-unix"), b"STORED\r\n")
        self.assertEqual(t.get(b"k"), b"via-unix")
        self.assertTrue(u.call(b"version\r\n").startswith(b"VERSION 1.6.18"))
        # Binary on the same socket type: protocol is detected per connection.
        b = self.l2_client(l2, unix=True)
        b.send(binary_request(0x0b))
        self.assertEqual(read_binary_response(b)["status"], 0)

    def test_stale_socket_file_is_replaced(self):
        path = os.path.join(self.tmp, "l2.sock")
        s = socket.socket(socket.AF_UNIX)
        s.bind(path)
        s.close()  # the file stays behind, as after a crash
        self.assertTrue(os.path.exists(path))
        l2 = self.start_l2(tcp=False)
        self.assertEqual(self.l2_client(l2, unix=True).set(b"a", b"b"), b"STORED\r\n")

    def test_eof_in_the_middle_of_a_request_closes_the_connection(self):
        l2 = self.start_l2()
        probe = self.l2_client(l2)
        for partial in (b"set a 0 0 5\r\nab", b"get a", b"\x80\x00\x00\x05", b"set b 0 0 10000\r\n" + b"z" * 100):
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(5)
            s.connect(l2.socket)
            s.sendall(b"set done 0 0 1\r\n1\r\n" if not partial.startswith(b"\x80") else b"")
            s.sendall(partial)
            s.shutdown(socket.SHUT_WR)
            got = b""
            while True:
                d = s.recv(4096)  # times out (fails) if the server keeps the connection open
                if not d:
                    break
                got += d
            s.close()
            self.assertIn(got, (b"STORED\r\n", b""), partial)
        wait_until(lambda: probe.stats()["curr_connections"] == "1", 5, what="only the probe left")

    def test_config_file_l2_section(self):
        data_dir = os.path.join(self.tmp, "from-config")
        sock = os.path.join(self.tmp, "cfg.sock")
        l2 = self.start_l2(tcp=False, config={"log_level": "warn",
                                              "l2": {"address": sock, "data_dir": data_dir,
                                                     "max_bytes": 64 * MiB, "threads": 3}})
        c = Client(path=sock, timeout=10)
        self.addCleanup(c.close)
        self.assertEqual(c.set(b"k", b"v"), b"STORED\r\n")
        st = c.stats()
        self.assertEqual(st["threads"], "3")
        self.assertEqual(st["limit_maxbytes"], str(64 * MiB))
        self.assertTrue(os.path.isdir(data_dir) and os.path.exists(os.path.join(data_dir, "CURRENT")))
        self.assertEqual(l2.stop(), 0)

    def test_sigterm_answers_everything_received_then_exits_0(self):
        l2 = self.start_l2()
        clients = [self.l2_client(l2, unix=True, timeout=30) for _ in range(8)]
        per_client = 2000
        for n, c in enumerate(clients):
            c.send(b"".join(b"set drain-%d-%d 0 0 6\r\nvalue%d\r\n" % (n, i, i % 10) for i in range(per_client)))
        for c in clients[:4]:
            self.assertEqual(c.read_line(), b"STORED\r\n")
        l2.proc.send_signal(signal.SIGTERM)
        for n, c in enumerate(clients):
            expected = per_client - 1 if n < 4 else per_client
            self.assertEqual(c.read_exact(8 * expected), b"STORED\r\n" * expected, f"client {n}")
            self.assertEqual(c.read_available(1.0), b"<CLOSED>")
        self.assertEqual(l2.proc.wait(30), 0)
        self.assertIn("rocksdb closed", l2.read_log())
        # A clean close: everything is there after a restart on the same data dir.
        again = self.start_l2(data_dir=l2.data_dir, name="again")
        c = self.l2_client(again)
        for n in range(8):
            self.assertEqual(c.get(b"drain-%d-%d" % (n, per_client - 1)), b"value%d" % ((per_client - 1) % 10))

    def test_restart_keeps_items_expiry_flags_and_grows_cas(self):
        l2 = self.start_l2()
        c = self.l2_client(l2)
        self.assertEqual(c.set(b"keep", b"data", flags=77, exptime=1000), b"STORED\r\n")
        self.assertEqual(c.set(b"gone", b"x", exptime=1), b"STORED\r\n")
        cas_before = int(c.call(b"gets keep\r\n").split(b"\r\n")[0].split()[4])
        b = self.l2_client(l2)  # one protocol per connection: binary gets its own
        b.send(binary_request(0x40, b"keep"))
        before = read_binary_response(b)
        c.close()
        b.close()
        self.assertEqual(l2.stop(), 0)
        time.sleep(2.1)  # "gone" expires while the server is down
        again = self.start_l2(data_dir=l2.data_dir, name="again")
        c = self.l2_client(again)
        self.assertEqual(c.call(b"gets keep\r\n"), b"VALUE keep 77 4 %d\r\ndata\r\nEND\r\n" % cas_before)
        self.assertIsNone(c.get(b"gone"))
        b = self.l2_client(again)
        b.send(binary_request(0x40, b"keep"))
        self.assertEqual(read_binary_response(b)["extras"], before["extras"], "same flags and absolute expiry")
        self.assertEqual(c.set(b"new", b"v"), b"STORED\r\n")
        cas_new = int(c.call(b"gets new\r\n").split(b"\r\n")[0].split()[4])
        self.assertGreater(cas_new, cas_before)

    def test_second_instance_on_the_same_data_dir_refuses_to_start(self):
        l2 = self.start_l2()
        other = L2Server(self.tmp, data_dir=l2.data_dir, name="other")
        self.addCleanup(other.kill)
        with self.assertRaises(AssertionError):
            other.start(timeout=10)
        self.assertNotEqual(other.proc.returncode, 0)
        self.assertIn("lock", other.read_log().lower())
        # The first one is unharmed and still owns its socket.
        self.assertEqual(self.l2_client(l2, unix=True).set(b"a", b"b"), b"STORED\r\n")
