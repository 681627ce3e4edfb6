"""A memcached client of one fleet host, run in the host's network namespace: set then get of its
own keys, every value checked, one retry of a request on a new connection when the connection
breaks (as memcached clients do), and a pause while the host is drained (SIGNAL_DIR/HOST.drain; it
confirms with HOST.drained). Once its first set and get are answered it writes HOST.ready. On SIGTERM it writes its counts as JSON to OUT and exits.

Usage: verifying_client.py HOST PORT SIGNAL_DIR OUT"""
import json
import os
import signal
import socket
import sys
import time

host, port, signal_dir, out_path = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
drain_file = os.path.join(signal_dir, host + ".drain")
drained_file = os.path.join(signal_dir, host + ".drained")
ready_file = os.path.join(signal_dir, host + ".ready")  # written once a first request was answered
counts = {"requests": 0, "failed": 0, "wrong": 0, "retried": 0, "drains": 0}
stop = False


def on_term(*_):
    global stop
    stop = True


signal.signal(signal.SIGTERM, on_term)


class Broken(Exception):
    pass


class Connection:
    def __init__(self):
        self.sock = None
        self.buf = b""

    def close(self):
        if self.sock:
            self.sock.close()
        self.sock, self.buf = None, b""

    def exchange(self, request, terminator):
        try:
            if self.sock is None:
                # Long enough for a restart of rend (about 2.5 s on the test hosts, more on a busy
                # machine), whose clients' requests wait in systemd's store meanwhile.
                self.sock = socket.create_connection(("127.0.0.1", port), timeout=15)
            self.sock.sendall(request)
            while terminator not in self.buf:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise Broken("closed by the server")
                self.buf += chunk
        except (OSError, Broken) as e:
            self.close()
            raise Broken(str(e))
        end = self.buf.index(terminator) + len(terminator)
        reply, self.buf = self.buf[:end], self.buf[end:]
        return reply


def call(conn, request, terminator):
    """The reply, retrying once on a new connection; None when both attempts broke."""
    counts["requests"] += 1
    for attempt in range(2):
        try:
            return conn.exchange(request, terminator)
        except Broken as e:
            print(f"{time.strftime('%H:%M:%S')} {host}: attempt {attempt + 1} of {request[:40]!r} broke: {e}",
                  file=sys.stderr, flush=True)
            if attempt == 0:
                counts["retried"] += 1
    counts["failed"] += 1
    return None


conn = Connection()
# key -> the values it may hold: one once a set was answered, more after sets whose outcome is
# unknown, None (anything) for a key whose first set in this run went unanswered (an earlier run's
# value may still be there).
latest = {}
i = 0
while not stop:
    if os.path.exists(drain_file):
        conn.close()
        counts["drains"] += 1
        open(drained_file, "w").close()
        while os.path.exists(drain_file) and not stop:
            time.sleep(0.02)
        os.unlink(drained_file)
        continue
    key = b"fleet-%s-%d" % (host.encode(), i % 400)
    value = b"%d-%d" % (i, time.monotonic_ns())
    reply = call(conn, b"set %s 0 0 %d\r\n%s\r\n" % (key, len(value), value), b"\r\n")
    if reply == b"STORED\r\n":
        latest[key] = {value}
    else:  # no reply, or an error: the value may or may not have been stored
        if reply is not None:
            counts["failed"] += 1
            print(f"{host}: set {key!r} answered {reply[:80]!r}", file=sys.stderr)
        latest[key] = None if latest.get(key) is None else latest[key] | {value}
    reply = call(conn, b"get %s\r\n" % key, b"END\r\n")
    if i == 0 and reply is not None:
        open(ready_file, "w").close()
    if reply is not None and latest.get(key) is not None:
        expected = {b"VALUE %s 0 %d\r\n%s\r\nEND\r\n" % (key, len(v), v) for v in latest[key]}
        if reply not in expected:
            counts["wrong"] += 1
            print(f"{host}: {key!r} read {reply[:80]!r}", file=sys.stderr)
    i += 1
    time.sleep(0.008)  # a steady client, not one that takes the test machine's cores from the hosts

with open(out_path, "w") as f:
    json.dump(counts, f)
