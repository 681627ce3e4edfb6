"""A set, get and delete of a key of its own on rend's port, as a client would: prints ok or what
went wrong. Usage: python3 - HOST PORT (the role feeds this file on stdin)."""
import os
import socket
import sys

host, port = sys.argv[1], int(sys.argv[2])
key = f"rend-probe-{socket.gethostname()}-{os.getpid()}".encode()
value = os.urandom(8).hex().encode()
with socket.create_connection((host, port), timeout=5) as s:
    buf = b""

    def call(request, terminator):
        global buf
        s.sendall(request)
        while not buf.endswith(terminator):
            chunk = s.recv(65536)
            if not chunk:
                sys.exit(f"connection closed after {request!r}")
            buf += chunk
        reply, buf = buf, b""
        return reply

    checks = [
        (b"set %s 0 60 %d\r\n%s\r\n" % (key, len(value), value), b"\r\n", b"STORED\r\n"),
        (b"get %s\r\n" % key, b"END\r\n", b"VALUE %s 0 %d\r\n%s\r\nEND\r\n" % (key, len(value), value)),
        (b"delete %s\r\n" % key, b"\r\n", b"DELETED\r\n"),
        (b"get %s\r\n" % key, b"END\r\n", b"END\r\n"),
    ]
    for request, terminator, expected in checks:
        got = call(request, terminator)
        if got != expected:
            sys.exit(f"{request!r} answered {got!r}, expected {expected!r}")
print("ok")
