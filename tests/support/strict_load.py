"""A load of clients that never retry: every request that does not get its exact reply is a failure.

Each connection writes keys of its own with random values and reads them back, checking every
reply byte for byte. A connection the server closes, at any point, fails the requests it had
outstanding (at least one: a client cannot tell a close between requests from one under its next
request), and the connection is opened again so the load goes on. This is what an application
sees from a memcached client that does not retry.

Connections differ in protocol (text or binary), in pipelining (one request at a time, or bursts
of many sets and gets in one write) and in port (rend's main port or its batch port).
"""
import os
import random
import socket
import struct
import threading
import time

from rendtest import Client, binary_request, read_binary_response

BIN_GET, BIN_SET = 0x00, 0x01


class StrictLoad:
    def __init__(self, ports, connections=16, burst=40, timeout=15):
        """`ports`: the ports to spread the connections over, round robin."""
        self.ports = ports
        self.burst = burst
        self.timeout = timeout
        self.stop_flag = threading.Event()
        self.lock = threading.Lock()
        self.ok = 0
        self.failed = 0
        self.wrong = 0
        self.reconnects = 0
        self.samples = []
        kinds = [(proto, pipelined) for pipelined in (False, True) for proto in ("text", "binary")]
        self.threads = [threading.Thread(target=self.run, args=(i, ports[i % len(ports)], *kinds[i % 4]), daemon=True)
                        for i in range(connections)]

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def stop(self):
        self.stop_flag.set()
        for t in self.threads:
            t.join(self.timeout + 10)

    def summary(self):
        return f"ok {self.ok}, failed {self.failed}, wrong {self.wrong}, reconnects {self.reconnects}"

    def note(self, kind, count, what):
        with self.lock:
            if kind == "failed":
                self.failed += count
            else:
                self.wrong += count
            if len(self.samples) < 20:
                self.samples.append(f"{kind}: {what}")

    def run(self, index, port, proto, pipelined):
        rng = random.Random(index)
        client = None
        i = 0
        while not self.stop_flag.is_set():
            n = self.burst if pipelined else 1
            keys = [b"strict-%d-%d" % (index, (i + k) % 500) for k in range(n)]
            values = [os.urandom(rng.randint(1, 600)).hex().encode() for _ in range(n)]
            try:
                if client is None:
                    client = Client(port, timeout=self.timeout)
                if proto == "text":
                    good, bad = self.text_round(client, keys, values)
                else:
                    good, bad = self.binary_round(client, keys, values)
            except (ConnectionError, OSError, struct.error) as e:
                # Every request of the round still unanswered is lost (2 per key: set and get).
                self.note("failed", 2 * n, f"conn {index} ({proto}, port {port}): {e!r}")
                if client is not None:
                    client.close()
                client = None
                with self.lock:
                    self.reconnects += 1
                time.sleep(0.01)
                continue
            with self.lock:
                self.ok += good
            if bad:
                self.note("wrong", len(bad), f"conn {index} ({proto}): {bad[0]}")
            i += n
        if client is not None:
            client.close()

    @staticmethod
    def text_round(c, keys, values):
        c.send(b"".join(b"set %s 0 0 %d\r\n%s\r\nget %s\r\n" % (k, len(v), v, k) for k, v in zip(keys, values)))
        good, bad = 0, []
        for k, v in zip(keys, values):
            stored = c.read_line()
            reply = c.read_line()
            if reply.startswith(b"VALUE"):
                reply += c.read_until(b"END\r\n")
            expected = b"VALUE %s 0 %d\r\n%s\r\nEND\r\n" % (k, len(v), v)
            if stored != b"STORED\r\n":
                bad.append(f"set {k!r}: {stored!r}")
            else:
                good += 1
            if reply != expected:
                bad.append(f"get {k!r}: {reply[:80]!r}")
            else:
                good += 1
        return good, bad

    @staticmethod
    def binary_round(c, keys, values):
        out = []
        for n, (k, v) in enumerate(zip(keys, values)):
            out.append(binary_request(BIN_SET, k, v, struct.pack(">II", 0, 0), opaque=2 * n))
            out.append(binary_request(BIN_GET, k, opaque=2 * n + 1))
        c.send(b"".join(out))
        good, bad = 0, []
        for n, (k, v) in enumerate(zip(keys, values)):
            stored = read_binary_response(c)
            got = read_binary_response(c)
            if stored["status"] != 0 or stored["opaque"] != 2 * n:
                bad.append(f"set {k!r}: status {stored['status']} opaque {stored['opaque']}")
            else:
                good += 1
            if got["status"] != 0 or got["opaque"] != 2 * n + 1 or got["value"] != v:
                bad.append(f"get {k!r}: status {got['status']} value {got['value'][:40]!r}")
            else:
                good += 1
        return good, bad
