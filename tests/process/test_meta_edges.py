"""Meta commands at the edges of rend's own machinery (what the differential corpus cannot reach):

- a base64 key that decodes to bytes with a CRLF, which memcached echoes raw (k, me): in l1only
  it would cut memcached's reply in two on a connection shared by many clients, so rend refuses
  it, and the other clients' replies stay theirs; in the tiered modes the reply is L2's, whole,
  and a backfill from it copies the value, not a piece of the line;
- chunked L1 in l1only: a classic touch keeps a value's stale mark, and the CAS an mg reports
  after rewriting the value (T) is the one a following ms C is judged against;
- a backend that dies or hangs with meta requests in flight: every one (quiet ones too) is
  answered SERVER_ERROR, none is acknowledged, and rend serves again once it is back.
"""
import base64
import os
import signal
import struct
import time

from rendtest import ProcessTest, binary_request, free_port, read_binary_response, wait_until
from test_bad_input import all_threads_stopped

CRLF_KEY = b"a\r\nHD"


def b64(key):
    return base64.b64encode(key)


def binary_set(client, key, value):
    client.send(binary_request(0x01, key=key, value=value, extras=struct.pack(">II", 0, 0)))
    return read_binary_response(client)["status"]


def binary_get(client, key):
    client.send(binary_request(0x00, key=key))
    r = read_binary_response(client)
    return r["value"] if r["status"] == 0 else None


class MetaEdgesTest(ProcessTest):
    def test_l1only_refuses_a_key_memcached_would_echo_with_a_crlf(self):
        rend = self.start_rend(workers=1)
        binc = self.client(rend.port)
        self.assertEqual(binary_set(binc, CRLF_KEY, b"v"), 0)
        a = self.client(rend.port)
        b = self.client(rend.port)
        a.send(b"ms plain 2\r\nok\r\n")
        self.assertEqual(a.read_line(), b"HD\r\n")
        for line in (b"me " + b64(CRLF_KEY) + b" b", b"mg " + b64(CRLF_KEY) + b" b k v", b"ma " + b64(CRLF_KEY) + b" b N0"):
            a.send(line + b"\r\n")
            b.send(b"mg plain v k\r\n")
            self.assertEqual(a.read_line(), b"CLIENT_ERROR bad command line format\r\n", line)
            self.assertEqual(b.read_line(), b"VA 2 kplain\r\n")
            self.assertEqual(b.read_line(), b"ok\r\n")
        a.send(b"mg plain s\r\n")
        self.assertEqual(a.read_line(), b"HD s2\r\n")

    def test_tiered_backfill_takes_the_value_not_a_piece_of_the_line(self):
        rend = self.start_rend(workers=1, config={
            "l2": {"enabled": True, "data_dir": self.tmp + "/l2", "address": self.tmp + "/run/rend-l2.sock"},
            "listen": {"batch_port": free_port()},
        })
        batch = self.client(rend.config["listen"]["batch_port"])
        key = b"a\r\nb"
        self.assertEqual(binary_set(batch, key, b"5"), 0)  # the batch port leaves L1 without a copy
        c = self.client(rend.port)
        c.send(b"mg " + b64(key) + b" b k v\r\n")
        self.assertEqual(c.read_exact(len(b"VA 1 ka\r\nb\r\n5\r\n")), b"VA 1 ka\r\nb\r\n5\r\n")
        binc = self.client(rend.port)
        self.assertEqual(binary_get(binc, key), b"5", "L1's copy (or L2) holds the value itself")
        self.assertEqual(binary_get(binc, key), b"5")

    def test_chunked_l1only_keeps_marks_and_reports_the_cas_it_wrote(self):
        rend = self.start_rend(workers=2, config={"l1": {"chunked": True, "chunk_size": 480}})
        c = self.client(rend.port)
        c.send(b"ms k 600\r\n" + b"x" * 600 + b"\r\n")
        self.assertEqual(c.read_line(), b"HD\r\n")
        c.send(b"md k I\r\n")
        self.assertEqual(c.read_line(), b"HD\r\n")
        self.assertEqual(c.call(b"touch k 100\r\n"), b"TOUCHED\r\n")
        c.send(b"mg k s\r\n")
        self.assertEqual(c.read_line(), b"HD s600 X W\r\n", "a touch keeps the stale mark")
        c.send(b"ms k 3\r\nnew\r\n")
        self.assertEqual(c.read_line(), b"HD\r\n")
        c.send(b"mg k T60 c\r\n")
        line = c.read_line()
        self.assertTrue(line.startswith(b"HD c"), line)
        cas = line.split(b" c")[1].strip()
        c.send(b"ms k 3 C" + cas + b"\r\nnow\r\n")
        self.assertEqual(c.read_line(), b"HD\r\n", "the CAS mg reported is the value's")

    def test_memcached_killed_with_meta_requests_in_flight(self):
        mc = self.start_memcached()
        rend = self.start_rend(workers=1, l1_address=mc.address)
        c = self.client(rend.port, timeout=10)
        c.send(b"ms k 6\r\nbefore\r\n")
        self.assertEqual(c.read_line(), b"HD\r\n")
        mc.proc.send_signal(signal.SIGSTOP)
        self.addCleanup(lambda: mc.proc.poll() is None and mc.proc.send_signal(signal.SIGCONT))
        wait_until(lambda: all_threads_stopped(mc.proc.pid), 5, interval=0.005, what="memcached stopped")
        c.send(b"ms k 5 q\r\nafter\r\nmg k v\r\nma n N0 q\r\nmn\r\n")
        time.sleep(0.1)
        mc.proc.send_signal(signal.SIGKILL)
        mc.proc.wait(10)
        for what in ("quiet ms", "mg", "quiet ma"):
            line = c.read_line()
            self.assertTrue(line.startswith(b"SERVER_ERROR "), f"{what} while memcached died: {line!r}")
        self.assertEqual(c.read_line(), b"MN\r\n")

    def test_rend_l2_hung_with_meta_writes_in_flight(self):
        rend = self.start_rend(workers=1, config={
            "l2": {"enabled": True, "data_dir": self.tmp + "/l2", "address": self.tmp + "/run/rend-l2.sock",
                   "timeout_ms": 500},
        })
        c = self.client(rend.port, timeout=10)
        c.send(b"ms k 6\r\nbefore\r\nmg k v\r\n")
        self.assertEqual(c.read_line(), b"HD\r\n")
        self.assertEqual(c.read_line(), b"VA 6\r\n")
        self.assertEqual(c.read_line(), b"before\r\n")
        l2 = rend.l2_pid()
        os.kill(l2, signal.SIGSTOP)
        try:
            c.send(b"ms k 5 q\r\nafter\r\nmd k q\r\nmn\r\n")
            for what in ("quiet ms", "quiet md"):
                line = c.read_line()
                self.assertTrue(line.startswith(b"SERVER_ERROR "), f"{what} with rend-l2 hung: {line!r}")
            self.assertEqual(c.read_line(), b"MN\r\n")
        finally:
            os.kill(l2, signal.SIGCONT)
        # rend-l2 may still apply what it had read; once it answers again, every reader sees one
        # value (L1's copy was buried), the same from L1 and from L2.
        def reply():
            line = c.read_line()
            return line + (c.read_line() if line.startswith(b"VA") else b"")

        def settled():
            c.send(b"mg k v\r\nmg k v t\r\n")  # the second asks L2 first
            first, second = reply(), reply()
            return not first.startswith(b"SERVER_ERROR") and first.split(b"\r\n")[1:] == second.split(b"\r\n")[1:]
        wait_until(settled, 15, interval=0.3, what="rend-l2 answering again, both paths agreeing")


if __name__ == "__main__":
    import unittest
    unittest.main()
