"""Bad input rend must survive: each test sends one kind of bad input and asserts the exact reply
(or a clean close), that rend still serves a fresh connection afterwards, and that no worker
process restarted (same pids).
"""
import os
import random
import signal
import socket
import struct
import threading
import time

from rendtest import (Client, Memcached, ProcessTest, binary_request, read_binary_response, port_accepts,
                      wait_until)

MB = 1024 * 1024
RSS_LIMIT_KB = 200 * 1024


def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def fd_count(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def all_threads_stopped(pid):
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                stat = f.read()
            if stat[stat.rindex(")") + 2] not in "Tt":
                return False
        return True
    except OSError:
        return False


def wait_closed(client, timeout=5.0):
    """True if the server closes the connection within `timeout` (whatever it sends first)."""
    deadline = time.monotonic() + timeout
    client.sock.settimeout(0.2)
    while time.monotonic() < deadline:
        try:
            data = client.sock.recv(1 << 20)
        except socket.timeout:
            continue
        except ConnectionResetError:
            return True
        if not data:
            return True
        client.buf += data
    return False


def bheader(opcode, keylen=0, extlen=0, bodylen=0, opaque=0, magic=0x80):
    return struct.pack(">BBHBBHIIQ", magic, opcode, keylen, extlen, 0, 0, bodylen, opaque, 0)


class BadInputTest(ProcessTest):
    workers = 2

    def setUp(self):
        super().setUp()
        self.rend = self.start_rend(workers=self.workers)
        self.pids = self.rend.worker_pids()
        self.assertEqual(len(self.pids), self.workers)

    def fresh(self, **kw):
        return self.client(self.rend.port, **kw)

    def assert_healthy(self):
        """A fresh connection is served, and no worker restarted."""
        c = self.fresh()
        key = b"health-%d" % time.monotonic_ns()
        self.assertEqual(c.set(key, b"ok"), b"STORED\r\n")
        self.assertEqual(c.get(key), b"ok")
        c.close()
        self.assertEqual(self.rend.worker_pids(), self.pids, "a worker process restarted")

    def worker_rss_kb(self):
        return max(rss_kb(pid) for pid in self.rend.worker_pids().values())

    # ---- keys ----------------------------------------------------------------------------------

    def test_text_key_over_250_bytes(self):
        c = self.fresh()
        k251 = b"k" * 251
        # The line is refused; memcached does not swallow the data, so "x" is a command line of its own.
        c.send(b"set " + k251 + b" 0 0 1\r\nx\r\n")
        self.assertEqual(c.read_line(), b"CLIENT_ERROR bad command line format\r\n")
        self.assertEqual(c.read_line(), b"ERROR\r\n")
        for line in (b"get " + k251, b"get a " + k251, b"delete " + k251, b"incr " + k251 + b" 1",
                     b"touch " + k251 + b" 1", b"gat 0 " + k251):
            self.assertEqual(c.call(line + b"\r\n"), b"CLIENT_ERROR bad command line format\r\n", line[:20])
        # The same connection goes on, and a 250-byte key is fine.
        k250 = b"k" * 250
        self.assertEqual(c.set(k250, b"v"), b"STORED\r\n")
        self.assertEqual(c.get(k250), b"v")
        self.assert_healthy()

    def test_binary_key_over_250_bytes(self):
        c = self.fresh()
        c.send(binary_request(0x00, key=b"k" * 251, opaque=0x1234) + binary_request(0x0A))
        r = read_binary_response(c)
        self.assertEqual((r["status"], r["opaque"], r["value"]), (0x0004, 0x1234, b"Invalid arguments"))
        self.assertTrue(wait_closed(c), "the connection must be closed after Invalid arguments")
        self.assertEqual(c.buf, b"", "nothing after the error")
        c2 = self.fresh()
        c2.send(binary_request(0x01, key=b"k" * 251, value=b"v", extras=b"\0" * 8))
        self.assertEqual(read_binary_response(c2)["status"], 0x0004)
        self.assertTrue(wait_closed(c2))
        self.assert_healthy()

    # ---- malformed and unknown -----------------------------------------------------------------

    def test_malformed_lines(self):
        c = self.fresh()
        cases = [
            (b"set a 0 0\r\n", b"ERROR\r\n"),
            (b"set a x 0 1\r\n", b"CLIENT_ERROR bad command line format\r\n"),
            (b"set a 0 0 -1\r\n", b"CLIENT_ERROR bad command line format\r\n"),
            (b"set a 0 0 1\r\nxyz\r\n", b"CLIENT_ERROR bad data chunk\r\nERROR\r\n"),
            (b"cas a 0 0 1 x\r\n", b"CLIENT_ERROR bad command line format\r\n"),
            (b"incr a x\r\n", b"CLIENT_ERROR invalid numeric delta argument\r\n"),
            (b"incr a -1\r\n", b"CLIENT_ERROR invalid numeric delta argument\r\n"),
            (b"touch a x\r\n", b"CLIENT_ERROR invalid exptime argument\r\n"),
            (b"gat x a\r\n", b"CLIENT_ERROR invalid exptime argument\r\n"),
            (b"delete a 1\r\n", b"CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n"),
            (b"delete\r\n", b"ERROR\r\n"),
            (b"get\r\n", b"ERROR\r\n"),
            (b"incr a\r\n", b"ERROR\r\n"),
            (b"verbosity\r\n", b"ERROR\r\n"),
            (b"\r\n", b"ERROR\r\n"),
            (b"\n", b"ERROR\r\n"),
            (b"   \r\n", b"ERROR\r\n"),
            (b"\x00\x01\x02\r\n", b"ERROR\r\n"),
            (b"set a\x00 0 0 1\r\n", b"ERROR\r\n"),
        ]
        for data, expected in cases:
            c.send(data)
            got = c.read_exact(len(expected))
            self.assertEqual(got, expected, data)
        # Nothing more arrived, and the connection still serves.
        self.assertEqual(c.read_available(0.3), b"")
        self.assertEqual(c.set(b"after-malformed", b"v"), b"STORED\r\n")
        self.assert_healthy()

    def test_unknown_commands(self):
        c = self.fresh()
        for line in (b"foo", b"GET a", b"Set a 0 0 1", b"bogus a b c d e f g", b"g", b"x" * 2000):
            self.assertEqual(c.call(line + b"\r\n"), b"ERROR\r\n", line[:20])
        self.assertEqual(c.get(b"nothing-here"), None)
        # Binary: an unknown opcode is answered, its body swallowed, and the connection goes on.
        b = self.fresh()
        b.send(binary_request(0x55, value=b"some body bytes", opaque=5) + binary_request(0x0A, opaque=6))
        r = read_binary_response(b)
        self.assertEqual((r["opcode"], r["status"], r["opaque"], r["value"]), (0x55, 0x0081, 5, b"Unknown command"))
        r = read_binary_response(b)
        self.assertEqual((r["opcode"], r["status"], r["opaque"]), (0x0A, 0, 6))
        self.assert_healthy()

    # ---- too large -----------------------------------------------------------------------------

    def test_text_value_over_size_limit(self):
        c = self.fresh()
        self.assertEqual(c.set(b"big", b"old"), b"STORED\r\n")
        n = 2 * MB
        c.send(b"set big 0 0 %d\r\n" % n)
        # The data is swallowed as it arrives: send it in pieces.
        for _ in range(n // (256 * 1024)):
            c.send(b"v" * (256 * 1024))
        c.send(b"\r\nget big\r\n")
        self.assertEqual(c.read_line(), b"SERVER_ERROR object too large for cache\r\n")
        # A set over the limit removes the old value, as memcached does.
        self.assertEqual(c.read_line(), b"END\r\n")
        # The next command on the same connection works.
        self.assertEqual(c.set(b"small", b"x"), b"STORED\r\n")
        self.assertEqual(c.get(b"small"), b"x")
        # noreply: nothing at all is answered.
        c.send(b"set big 0 0 %d noreply\r\n" % n + b"w" * n + b"\r\nget small\r\n")
        self.assertEqual(c.read_until(b"END\r\n"), b"VALUE small 0 1\r\nx\r\nEND\r\n")
        self.assertLess(self.worker_rss_kb(), RSS_LIMIT_KB)
        self.assert_healthy()

    def test_binary_bad_magic_closes(self):
        c = self.fresh()
        c.send(binary_request(0x0A, opaque=1) + bheader(0x00, magic=0x81) + binary_request(0x0A, opaque=2))
        r = read_binary_response(c)
        self.assertEqual((r["opcode"], r["opaque"]), (0x0A, 1))
        self.assertTrue(wait_closed(c), "bad magic must close the connection")
        self.assertEqual(c.buf, b"")
        self.assert_healthy()

    def test_binary_get_with_absurd_body_length(self):
        c = self.fresh()
        c.send(bheader(0x00, keylen=1, bodylen=0xFFFFFFFF, opaque=9) + b"k")
        r = read_binary_response(c)
        self.assertEqual((r["opcode"], r["status"], r["opaque"], r["value"]), (0x00, 0x0004, 9, b"Invalid arguments"))
        self.assertTrue(wait_closed(c))
        self.assert_healthy()

    def test_binary_set_with_absurd_body_length_is_swallowed(self):
        # 0x7FFFFFF0: too large; the body is swallowed as it arrives, never buffered.
        c = self.fresh()
        c.send(bheader(0x01, keylen=3, extlen=8, bodylen=0x7FFFFFF0, opaque=3) + b"\0" * 8 + b"big")
        r = read_binary_response(c)
        self.assertEqual((r["opcode"], r["status"], r["opaque"], r["value"]), (0x01, 0x0003, 3, b"Too large."))
        chunk = b"\0" * (1 * MB)
        for _ in range(32):
            c.send(chunk)
        self.assertEqual(c.read_available(0.5), b"", "swallowed bytes are not answered")
        self.assertLess(self.worker_rss_kb(), RSS_LIMIT_KB)
        self.assert_healthy()

    def test_binary_set_with_body_length_ffffffff(self):
        c = self.fresh()
        c.send(bheader(0x01, keylen=3, extlen=8, bodylen=0xFFFFFFFF, opaque=4) + b"\0" * 8 + b"big")
        r = read_binary_response(c)
        self.assertEqual((r["opcode"], r["status"], r["opaque"], r["value"]), (0x01, 0x0003, 4, b"Too large."))
        # rend swallows what follows; memcached 1.6.18 (whose value length is a negative int here)
        # parses it instead, so zeros are a bad magic and a close. Either way: no reply, no
        # buffering, no crash.
        try:
            for _ in range(16):
                c.send(b"\0" * MB)
        except OSError:
            pass
        got = c.read_available(0.5)
        self.assertIn(got, (b"", b"<CLOSED>"))
        self.assertLess(self.worker_rss_kb(), RSS_LIMIT_KB)
        self.assert_healthy()

    # ---- clients that go away ------------------------------------------------------------------

    def test_client_disconnects_in_the_middle_of_a_value(self):
        other = self.fresh()
        self.assertEqual(other.set(b"other", b"1"), b"STORED\r\n")
        pids = list(self.pids.values())
        # Let idle fds settle, then take the baseline.
        time.sleep(0.3)
        base = sum(fd_count(p) for p in pids)
        for i in range(20):
            c = Client(self.rend.port)
            if i % 4 == 0:
                c.send(b"set half%d 0 0 100000\r\n" % i + b"x" * 50000)
            elif i % 4 == 1:
                c.send(binary_request(0x01, key=b"half%d" % i, value=b"x" * 100000, extras=b"\0" * 8)[:50000])
            elif i % 4 == 2:
                # A too-large value, cut while it is being swallowed.
                c.send(b"set half%d 0 0 %d\r\n" % (i, 3 * MB) + b"x" * 100000)
            else:
                c.send(b"get half0 half1 hal")
            c.close()
        # Nothing half-received was stored, and the other connection is unaffected.
        self.assertEqual(other.get(b"half0"), None)
        self.assertEqual(other.get(b"half1"), None)
        self.assertEqual(other.get(b"other"), b"1")
        # Every aborted connection is released (no fd leak in the workers).
        wait_until(lambda: sum(fd_count(p) for p in pids) <= base, 5,
                   what=f"worker fds back to {base} (now {sum(fd_count(p) for p in pids)})")
        self.assert_healthy()

    def test_half_closed_client_in_a_too_large_value_is_closed(self):
        # The client sends a too-large header, part of the value, then shuts its side down: rend
        # answers and must then close (not wait forever for the rest of the value).
        c = self.fresh()
        c.send(b"set big 0 0 %d\r\n" % (3 * MB) + b"x" * 1000)
        c.sock.shutdown(socket.SHUT_WR)
        self.assertEqual(c.read_line(), b"SERVER_ERROR object too large for cache\r\n")
        self.assertTrue(wait_closed(c, 5), "rend kept a half-closed connection open")
        self.assert_healthy()

    def test_3000_bytes_without_newline_closes(self):
        c = self.fresh()
        c.send(b"x" * 3000)
        self.assertTrue(wait_closed(c), "3000 bytes without a newline must close the connection")
        self.assertEqual(c.buf, b"", "no reply before the close")
        # A get line may be long: it waits for its newline.
        g = self.fresh()
        g.send(b"get " + b"k " * 1500)
        self.assertEqual(g.read_available(0.5), b"")
        g.send(b"\r\n")
        self.assertEqual(g.read_line(), b"END\r\n")
        self.assert_healthy()

    # ---- floods ----------------------------------------------------------------------------------

    def test_multi_get_whose_reply_would_not_fit_in_memory(self):
        # One 900 KiB item named 400 times: a 350 MiB reply, past the 64 MiB cap of one get's
        # reply. memcached's own words for a get it cannot allocate, and memory stays bounded.
        c = self.fresh(timeout=30)
        big = b"b" * (900 * 1024)
        self.assertEqual(c.set(b"big", big), b"STORED\r\n")
        before = self.worker_rss_kb()
        self.assertEqual(c.call(b"get" + b" big" * 400 + b"\r\n"),
                         b"SERVER_ERROR out of memory writing get response\r\n")
        self.assertLess(self.worker_rss_kb() - before, 160 * 1024, "a worker held the reply")
        # A get within the cap is answered whole, on the same connection.
        c.send(b"get" + b" big" * 20 + b"\r\n")
        for _ in range(20):
            self.assertEqual(c.read_line(), b"VALUE big 0 %d\r\n" % len(big))
            self.assertEqual(c.read_exact(len(big) + 2), big + b"\r\n")
        self.assertEqual(c.read_line(), b"END\r\n")
        self.assert_healthy()

    def test_flood_of_pipelined_gets(self):
        c = self.fresh(timeout=15)
        values = {}
        for i in range(100):
            key = b"flood%d" % i
            values[key] = (b"%d-" % i) * 700
            self.assertEqual(c.set(key, values[key][:2000]), b"STORED\r\n")
            values[key] = values[key][:2000]
        total = 10000
        keys = [b"flood%d" % (i % 120) for i in range(total)]  # flood100..119 are misses
        payload = b"".join(b"get " + k + b"\r\n" for k in keys)
        sender_error = []

        def send_all():
            try:
                c.sock.sendall(payload)
            except OSError as e:
                sender_error.append(e)

        sender = threading.Thread(target=send_all, daemon=True)
        sender.start()
        # Do not read for a while: rend must stop reading, not buffer without bound.
        peak = 0
        for _ in range(20):
            time.sleep(0.1)
            peak = max(peak, self.worker_rss_kb())
        # Now read every reply, in order.
        for n, k in enumerate(keys):
            line = c.read_line()
            if k in values:
                self.assertEqual(line, b"VALUE %s 0 %d\r\n" % (k, len(values[k])), f"reply {n}")
                self.assertEqual(c.read_exact(len(values[k]) + 2), values[k] + b"\r\n", f"reply {n}")
                line = c.read_line()
            self.assertEqual(line, b"END\r\n", f"reply {n}")
            if n % 1000 == 0:
                peak = max(peak, self.worker_rss_kb())
        sender.join(10)
        self.assertFalse(sender.is_alive())
        self.assertEqual(sender_error, [])
        self.assertEqual(c.read_available(0.3), b"", "no extra replies")
        self.assertLess(peak, RSS_LIMIT_KB, f"rend-worker RSS peaked at {peak} kB")
        self.assert_healthy()

    def test_random_garbage(self):
        seed = int(os.environ.get("REND_FUZZ_SEED", "20261124"))
        rng = random.Random(seed)
        words = [b"get", b"gets", b"set", b"add", b"cas", b"incr", b"decr", b"touch", b"gat", b"delete",
                 b"append", b"flush_all", b"verbosity", b"stats", b"version", b"noreply", b"0", b"-1",
                 b"4294967296", b"18446744073709551616", b"1048577", b"k" * 251, b"\r\n", b"\n", b"\0"]
        hung = []
        for i in range(200):
            kind = i % 4
            if kind == 0:  # random bytes
                data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 3000)))
            elif kind == 1:  # text-ish: protocol words, numbers and junk
                parts = []
                for _ in range(rng.randrange(1, 40)):
                    r = rng.random()
                    if r < 0.6:
                        parts.append(rng.choice(words))
                    elif r < 0.8:
                        parts.append(b"%d" % rng.randrange(-10, 1 << 33))
                    else:
                        parts.append(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 20))))
                data = b" ".join(parts) + rng.choice([b"\r\n", b"", b"\n"])
            else:  # binary: a plausible header with random fields, then random bytes
                opcode = rng.choice([0x00, 0x01, 0x05, 0x08, 0x0A, 0x0E, 0x10, 0x1B, 0x1C, 0x1D, 0x40, 0x55,
                                     rng.randrange(256)])
                keylen = rng.choice([0, 1, 5, 250, 251, rng.randrange(65536)])
                extlen = rng.choice([0, 4, 8, 20, rng.randrange(256)])
                bodylen = rng.choice([0, keylen + extlen, keylen + extlen + 5, rng.randrange(1 << 32),
                                      0xFFFFFFFF])
                data = struct.pack(">BBHBBHIIQ", 0x80, opcode, keylen, extlen, rng.randrange(256),
                                   rng.randrange(65536), bodylen, rng.randrange(1 << 32), rng.randrange(1 << 64))
                data += bytes(rng.randrange(256) for _ in range(rng.randrange(0, 400)))
                if kind == 3:
                    data += binary_request(0x0A)
            c = Client(self.rend.port, timeout=5)
            try:
                c.send(data)
                c.sock.shutdown(socket.SHUT_WR)
                # After the client's EOF rend answers what it can and closes: never a hang.
                if not wait_closed(c, 5):
                    hung.append((i, data[:40]))
            except OSError:
                pass
            finally:
                c.close()
        self.assertEqual(self.rend.worker_pids(), self.pids, f"a worker crashed (fuzz seed {seed})")
        if hung:
            self.fail(f"{len(hung)} connections left open 5 s after the client's EOF (fuzz seed {seed}):\n" +
                      "\n".join(f"  case {i}: {data.hex(' ')}" for i, data in hung))
        self.assert_healthy()


class MemcachedDiesTest(ProcessTest):
    """memcached (L1) killed with a request in flight, then started again on the same address."""

    def test_memcached_killed_mid_request(self):
        mc = self.start_memcached()
        rend = self.start_rend(workers=1, l1_address=mc.address, config={"l1": {"connections": 1}})
        pids = rend.worker_pids()
        c = self.client(rend.port, timeout=10)
        self.assertEqual(c.set(b"k", b"before"), b"STORED\r\n")

        # Freeze memcached so the next requests are in flight, then kill it. SIGSTOP reaches the
        # threads asynchronously: wait until every one of them is stopped.
        mc.proc.send_signal(signal.SIGSTOP)
        self.addCleanup(lambda: mc.proc.poll() is None and mc.proc.send_signal(signal.SIGCONT))
        wait_until(lambda: all_threads_stopped(mc.proc.pid), 5, interval=0.005, what="memcached stopped")
        c.send(b"set k 0 0 5\r\nafter\r\nget k\r\n")
        b = self.client(rend.port, timeout=10)
        b.send(binary_request(0x01, key=b"k", value=b"bin", extras=b"\0" * 8, opaque=77))
        time.sleep(0.1)
        mc.proc.send_signal(signal.SIGKILL)
        mc.proc.wait(10)
        started = time.monotonic()
        first = c.read_line()
        second = c.read_line()
        self.assertTrue(first.startswith(b"SERVER_ERROR "), f"set during L1 death answered {first!r}")
        self.assertTrue(second.startswith(b"SERVER_ERROR "), f"get during L1 death answered {second!r}")
        r = read_binary_response(b)
        self.assertEqual(r["opaque"], 77)
        self.assertNotEqual(r["status"], 0, "a binary set was acknowledged although L1 died")
        self.assertLess(time.monotonic() - started, 5, "answers took too long")

        # While L1 is down: fast errors, never a hang.
        d = self.client(rend.port, timeout=5)
        reply = d.call(b"get k\r\n")
        self.assertTrue(reply.startswith(b"SERVER_ERROR "), reply)
        reply = d.call(b"set k 0 0 1\r\nx\r\n")
        self.assertTrue(reply.startswith(b"SERVER_ERROR "), reply)

        # A new memcached on the same address: rend serves again within a few seconds.
        mc2 = Memcached(self.tmp)
        mc2.port = mc.port
        mc2.args[mc2.args.index("-p") + 1] = str(mc.port)
        wait_until(lambda: not port_accepts(mc.port), 5, what="old memcached port released")
        mc2.start()
        self.addCleanup(mc2.stop)

        def serves():
            e = Client(rend.port, timeout=5)
            try:
                return e.call(b"set k 0 0 5\r\nagain\r\n") == b"STORED\r\n" and e.get(b"k") == b"again"
            finally:
                e.close()
        wait_until(serves, 10, interval=0.2, what="rend serving through the new memcached")
        # The old connection too (its earlier requests were answered, it was not dropped).
        self.assertEqual(c.get(b"k"), b"again")
        self.assertEqual(rend.worker_pids(), pids, "a worker restarted")
