"""The soak's verifying client: one process, one keyspace of its own, a model of what each key may
hold, and a connection that is opened again whenever a request fails.

The model is a set of acceptable states per key (a value's digest, or None for "absent"). A
request that is answered narrows it to what the answer proves; a write that fails (an error reply,
a closed connection, a timeout) may or may not have been applied, so it widens the set to "before
or after". A read that returns a value outside the set is a wrong value; a miss when the set does
not allow absence is a lost value. Neither may ever happen. A client never retries a request:
each failure is counted by kind and the next request goes on a new connection.
"""

import hashlib
import random
import socket
import struct
import time

TIMEOUT_S = 5.0
MAX_VALUE = 1024 * 1024 - 1024  # under memcached's 1 MiB item limit with the item's own overhead


def digest(data):
    return hashlib.blake2b(data, digest_size=16).digest()


def value_size(rng):
    """Mostly small values, some of a few KiB, a few up to 1 MiB."""
    r = rng.random()
    if r < 0.70:
        return rng.randint(0, 100)
    if r < 0.97:
        return rng.randint(101, 16 * 1024)
    if r < 0.999:
        return rng.randint(16 * 1024, 256 * 1024)
    return rng.randint(256 * 1024, MAX_VALUE)


class Failure(Exception):
    """A request that got no usable answer. kind: closed, timeout, refused, server_error, unexpected."""

    def __init__(self, kind, detail=""):
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


class Connection:
    def __init__(self, address):
        host, port = address
        try:
            self.sock = socket.create_connection((host, port), timeout=TIMEOUT_S)
        except socket.timeout:
            raise Failure("timeout", "connect")
        except OSError as e:
            raise Failure("refused", str(e))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()

    def close(self):
        self.sock.close()

    def send(self, data):
        try:
            self.sock.sendall(data)
        except socket.timeout:
            raise Failure("timeout", "send")
        except OSError as e:
            raise Failure("closed", str(e))

    def _fill(self):
        try:
            chunk = self.sock.recv(1 << 20)
        except socket.timeout:
            raise Failure("timeout", "recv")
        except OSError as e:
            raise Failure("closed", str(e))
        if not chunk:
            raise Failure("closed", "by the server")
        self.buf += chunk

    def line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                out = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return out
            self._fill()

    def exact(self, n):
        while len(self.buf) < n:
            self._fill()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out


def _server_error(line):
    if line.startswith(b"SERVER_ERROR"):
        raise Failure("server_error", line.decode(errors="replace"))
    raise Failure("unexpected", line[:200].decode(errors="replace"))


class TextProtocol:
    name = "text"

    def set(self, c, key, value):
        c.send(b"set %s 0 0 %d\r\n%s\r\n" % (key, len(value), value))
        line = c.line()
        if line != b"STORED":
            _server_error(line)

    def get(self, c, key):
        c.send(b"get %s\r\n" % key)
        line = c.line()
        if line == b"END":
            return None
        parts = line.split()
        if len(parts) != 4 or parts[0] != b"VALUE" or parts[1] != key:
            _server_error(line)
        data = c.exact(int(parts[3]) + 2)[:-2]
        end = c.line()
        if end != b"END":
            _server_error(end)
        return data

    def delete(self, c, key):
        c.send(b"delete %s\r\n" % key)
        line = c.line()
        if line not in (b"DELETED", b"NOT_FOUND"):
            _server_error(line)
        return line == b"DELETED"

    def incr(self, c, key, delta):
        c.send(b"incr %s %d\r\n" % (key, delta))
        line = c.line()
        if line == b"NOT_FOUND":
            return None
        if not line.isdigit():
            _server_error(line)
        return int(line)


class BinaryProtocol:
    name = "binary"
    SET, GET, DELETE, INCR = 0x01, 0x00, 0x04, 0x05

    def _call(self, c, opcode, key, value=b"", extras=b""):
        body = len(extras) + len(key) + len(value)
        c.send(struct.pack(">BBHBBHIIQ", 0x80, opcode, len(key), len(extras), 0, 0, body, 0, 0) + extras + key + value)
        header = c.exact(24)
        magic, op, key_len, extras_len, _, status, body_len, _, _ = struct.unpack(">BBHBBHIIQ", header)
        body = c.exact(body_len)
        if magic != 0x81 or op != opcode:
            raise Failure("unexpected", f"header {header.hex()}")
        return status, body[extras_len + key_len:], body[:extras_len]

    def _failed(self, status, body):
        if status in (0x82, 0x84, 0x85, 0x86):  # out of memory, internal, busy, temporary failure
            raise Failure("server_error", f"binary status {status:#x} {body[:100]!r}")
        raise Failure("unexpected", f"binary status {status:#x} {body[:100]!r}")

    def set(self, c, key, value):
        status, body, _ = self._call(c, self.SET, key, value, struct.pack(">II", 0, 0))
        if status != 0:
            self._failed(status, body)

    def get(self, c, key):
        status, body, _ = self._call(c, self.GET, key)
        if status == 0x01:
            return None
        if status != 0:
            self._failed(status, body)
        return body

    def delete(self, c, key):
        status, body, _ = self._call(c, self.DELETE, key)
        if status not in (0, 0x01):
            self._failed(status, body)
        return status == 0

    def incr(self, c, key, delta):
        # Expiration 0xffffffff: NOT_FOUND instead of creating the counter, as text incr does.
        status, body, _ = self._call(c, self.INCR, key, b"", struct.pack(">QQI", delta, 0, 0xFFFFFFFF))
        if status == 0x01:
            return None
        if status != 0:
            self._failed(status, body)
        return struct.unpack(">Q", body)[0]


class Counts:
    def __init__(self):
        self.requests = 0
        self.ok = 0
        self.failures = {}      # kind -> count
        self.wrong = 0          # a value outside what the model allows
        self.lost = []          # times of misses the model did not allow
        self.examples = []      # the first few wrong values and failures, for the report

    def fail(self, kind, detail):
        self.failures[kind] = self.failures.get(kind, 0) + 1
        self.note(kind, detail)

    def note(self, kind, detail):
        if len(self.examples) < 20:
            self.examples.append(f"{kind}: {detail}")


class SoakClient:
    """Runs until `deadline` against `address`; returns its Counts."""

    def __init__(self, name, address, seed, keys=400, counters=20):
        self.rng = random.Random(seed)
        self.address = address
        self.protocols = [TextProtocol(), BinaryProtocol()]
        self.keys = [b"%s-k%d" % (name, i) for i in range(keys)]
        self.counters = [b"%s-c%d" % (name, i) for i in range(counters)]
        # key -> set of acceptable states: a digest, None (absent), or an int for counters
        self.model = {k: {None} for k in self.keys + self.counters}
        self.counts = Counts()
        self.conn = None
        self.proto = None

    def _connection(self):
        if self.conn is None:
            self.conn = Connection(self.address)
            self.proto = self.rng.choice(self.protocols)
        return self.conn

    def _drop(self):
        if self.conn is not None:
            self.conn.close()
        self.conn = None

    def step(self):
        r = self.rng.random()
        if r < 0.45:
            self._get(self.rng.choice(self.keys))
        elif r < 0.85:
            key = self.rng.choice(self.keys)
            self._set(key, self.rng.randbytes(value_size(self.rng)))
        elif r < 0.92:
            self._delete(self.rng.choice(self.keys))
        elif r < 0.96:
            key = self.rng.choice(self.counters)
            self._set(key, b"%d" % self.rng.randint(0, 1000), counter=True)
        else:
            self._incr(self.rng.choice(self.counters), self.rng.randint(1, 100))

    def _request(self, fn):
        self.counts.requests += 1
        try:
            out = fn(self._connection())
            self.counts.ok += 1
            return True, out
        except Failure as f:
            self.counts.fail(f.kind, f.detail)
            self._drop()
            return False, None

    def _set(self, key, value, counter=False):
        state = int(value) if counter else digest(value)
        ok, _ = self._request(lambda c: self.proto.set(c, key, value))
        self.model[key] = {state} if ok else self.model[key] | {state}

    def _delete(self, key):
        ok, _ = self._request(lambda c: self.proto.delete(c, key))
        self.model[key] = {None} if ok else self.model[key] | {None}

    def _get(self, key):
        ok, data = self._request(lambda c: self.proto.get(c, key))
        if not ok:
            return
        allowed = self.model[key]
        if data is None:
            if None not in allowed:
                self.counts.lost.append(time.time())
                self.counts.note("lost", key.decode())
            # The value may still come back (a miss served by L1 alone while L2 was down).
            self.model[key] = allowed | {None}
            return
        if digest(data) not in allowed:
            self.counts.wrong += 1
            self.counts.note("wrong", f"{key.decode()}: {len(data)} bytes not in {len(allowed)} allowed states")
            return
        self.model[key] = {digest(data)}

    def _incr(self, key, delta):
        ok, value = self._request(lambda c: self.proto.incr(c, key, delta))
        allowed = self.model[key]
        after = {s + delta for s in allowed if isinstance(s, int)}
        if not ok:
            self.model[key] = allowed | after
            return
        if value is None:
            if None not in allowed:
                self.counts.lost.append(time.time())
                self.counts.note("lost", key.decode())
            self.model[key] = allowed | {None}
        elif value not in after:
            self.counts.wrong += 1
            self.counts.note("wrong", f"{key.decode()}: incr gave {value}, allowed {sorted(after)[:5]}")
            self.model[key] = {value}
        else:
            self.model[key] = {value}

    def run(self, deadline):
        while time.time() < deadline:
            self.step()
        # Last, with nothing killed any more: every key read back once.
        for key in self.keys:
            self._get(key)
        self._drop()
        return self.counts


def run_client(args):
    """multiprocessing entry point: (name, address, seed, deadline) -> Counts as a dict."""
    name, address, seed, deadline = args
    counts = SoakClient(name.encode(), address, seed).run(deadline)
    return {"requests": counts.requests, "ok": counts.ok, "failures": counts.failures, "wrong": counts.wrong,
            "lost": counts.lost, "examples": counts.examples}
