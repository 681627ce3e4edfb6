"""Hostile and broken clients never hurt the others: while one misbehaves on the same worker, a
well-behaved client's requests keep their results and their latency stays within a generous bound
of what it was alone."""
import socket
import threading
import time

from rendtest import ProcessTest


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


def p99_ms(client, n=400):
    """99th percentile of set+get round trips of a well-behaved client; asserts every result."""
    times = []
    for i in range(n):
        key = b"good-%d" % i
        start = time.perf_counter()
        assert client.set(key, b"v%d" % i) == b"STORED\r\n"
        assert client.get(key) == b"v%d" % i
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return times[int(len(times) * 0.99)]


class HostileClientsTest(ProcessTest):
    def setUp(self):
        super().setUp()
        # One worker: the hostile client and the good one share its loop, the strictest case.
        self.rend = self.start_rend(workers=1)
        self.good = self.client(self.rend.port)
        self.alone_ms = p99_ms(self.good)
        self.stop = threading.Event()
        self.addCleanup(self.stop.set)

    def assert_unaffected(self):
        with_ms = p99_ms(self.good)
        # Generous: a loaded CI machine varies; a stalled loop would be seconds.
        self.assertLess(with_ms, max(10 * self.alone_ms, 50.0), f"p99 {with_ms:.1f} ms, alone {self.alone_ms:.1f} ms")

    def background(self, fn):
        """Runs the hostile client in a thread; its own failures are the test's (see finish)."""
        def run():
            try:
                fn()
            except Exception as e:  # noqa: BLE001 - reported by finish()
                self.errors.append(e)
        self.errors = getattr(self, "errors", [])
        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def finish(self):
        self.stop.set()
        self.thread.join(10)
        self.assertEqual(self.errors, [])

    def test_a_command_and_value_sent_one_byte_at_a_time(self):
        def trickle():
            s = socket.create_connection(("127.0.0.1", self.rend.port))
            request = b"set slow 0 0 2000\r\n" + b"x" * 2000 + b"\r\n"
            for b in request:
                if self.stop.is_set():
                    break
                s.sendall(bytes([b]))
                time.sleep(0.002)
            s.close()
        self.background(trickle)
        time.sleep(0.2)
        self.assert_unaffected()
        self.finish()

    def test_a_client_that_never_reads_its_replies(self):
        s = socket.create_connection(("127.0.0.1", self.rend.port))
        self.addCleanup(s.close)
        self.assertEqual(self.good.set(b"big", b"x" * 100000), b"STORED\r\n")

        def flood():
            s.setblocking(False)
            burst = b"get big\r\n" * 1000
            while not self.stop.is_set():
                try:
                    s.send(burst)
                except BlockingIOError:
                    time.sleep(0.01)  # rend stopped reading it: that is the point
        worker = next(iter(self.rend.worker_pids().values()))
        before = rss_mb(worker)
        self.background(flood)
        time.sleep(0.5)
        self.assert_unaffected()
        self.finish()
        # Its replies in flight are bounded by output_high_water (4 MiB) in bytes, not by
        # max_pending_requests (4096) in requests: 4096 of these would be 400 MB.
        self.assertLess(rss_mb(worker) - before, 48, "the worker's memory while a client never reads")

    def test_thousands_of_connections_that_send_nothing(self):
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        self.addCleanup(resource.setrlimit, resource.RLIMIT_NOFILE, (soft, hard))
        idle = [socket.create_connection(("127.0.0.1", self.rend.port)) for _ in range(3000)]
        self.addCleanup(lambda: [c.close() for c in idle])
        self.assert_unaffected()

    def test_half_closed_connections(self):
        # A client that sends its requests and shuts down its sending side still gets every
        # answer (memcached too), then the connection closes.
        def half_close():
            while not self.stop.is_set():
                s = socket.create_connection(("127.0.0.1", self.rend.port))
                s.sendall(b"set hc 0 0 1\r\nx\r\nget hc\r\n")
                s.shutdown(socket.SHUT_WR)
                got = b""
                while True:
                    d = s.recv(1000)
                    if not d:
                        break
                    got += d
                assert got == b"STORED\r\nVALUE hc 0 1\r\nx\r\nEND\r\n", got
                s.close()
        self.background(half_close)
        time.sleep(0.2)
        self.assert_unaffected()
        self.finish()
