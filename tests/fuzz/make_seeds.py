#!/usr/bin/env python3
"""Writes the seed inputs of each fuzz target into corpus/<target>/seed-*: requests and replies
of every kind the decoders meet, so fuzzing starts from valid inputs rather than from nothing.
Inputs libFuzzer finds later (crashes included) are added beside them by hand."""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def write(target, seeds):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    for i, data in enumerate(seeds):
        with open(os.path.join(d, f"seed-{i:03d}"), "wb") as f:
            f.write(data if isinstance(data, bytes) else data.encode())


def packet(magic, opcode, key=b"", extras=b"", value=b"", status=0, opaque=0, cas=0, data_type=0):
    body = extras + key + value
    return struct.pack(">BBHBBHIIQ", magic, opcode, len(key), len(extras), data_type, status, len(body), opaque,
                       cas) + body


def req(opcode, **kw):
    return packet(0x80, opcode, **kw)


def res(opcode, **kw):
    return packet(0x81, opcode, **kw)


text_requests = [
    "get a\r\n", "gets a b c\r\n", "get " + "k" * 250 + "\r\n", "get " + "k" * 251 + "\r\n",
    "set k 1 2 3\r\nabc\r\n", "add k 0 0 0\r\n\r\n", "replace k 4294967295 -1 1 noreply\r\nx\r\n",
    "append k 0 0 2\r\nxy\r\n", "prepend k 0 0 2\r\nxy\r\n", "cas k 0 0 1 5\r\nx\r\n",
    "cas k 0 0 1 18446744073709551615 noreply\r\nx\r\n", "incr k 5\r\n", "decr k 18446744073709551615\r\n",
    "delete k\r\n", "delete k 0 noreply\r\n", "touch k 10\r\n", "gat 10 a b\r\n", "gats -1 a\r\n",
    "flush_all\r\n", "flush_all 5 noreply\r\n", "stats\r\n", "stats slabs\r\n", "version\r\n",
    "verbosity 1\r\n", "quit\r\n", "GET / HTTP/1.1\r\n", "set k 0 0 5\r\nab\r\n", "set k 0 0 abc\r\nx\r\n",
    "bget a\r\n", "mg k v\r\n", "\r\n", "get a\n", "set k 0 0 1048577\r\n",
]
write("text_request", text_requests + ["".join(text_requests)])

write("binary_request", [
    req(0x00, key=b"k"), req(0x0c, key=b"k", opaque=7), req(0x09, key=b"k"), req(0x0d, key=b"k"),
    req(0x01, key=b"k", extras=struct.pack(">II", 5, 10), value=b"value", cas=3),
    req(0x11, key=b"k", extras=struct.pack(">II", 0, 0), value=b"v"),
    req(0x02, key=b"k", extras=struct.pack(">II", 0, 0), value=b"v"),
    req(0x03, key=b"k", extras=struct.pack(">II", 0, 0), value=b"v"),
    req(0x0e, key=b"k", value=b"tail"), req(0x0f, key=b"k", value=b"head"), req(0x04, key=b"k"),
    req(0x05, key=b"k", extras=struct.pack(">QQI", 1, 0, 0)), req(0x06, key=b"k", extras=struct.pack(">QQI", 1, 5, 0xffffffff)),
    req(0x1c, key=b"k", extras=struct.pack(">I", 10)), req(0x1d, key=b"k", extras=struct.pack(">I", 10)),
    req(0x23, key=b"k", extras=struct.pack(">I", 10)), req(0x08), req(0x08, extras=struct.pack(">I", 5)),
    req(0x0a), req(0x0b), req(0x07), req(0x10), req(0x10, key=b"slabs"), req(0x1b, extras=struct.pack(">I", 1)),
    req(0x40, key=b"k"), req(0x55, key=b"k"), req(0x00, key=b"k" * 251), req(0x01, key=b"k", value=b"no extras"),
    req(0x00, key=b"k")[:10], b"\x81" + req(0x00, key=b"k")[1:],
    req(0x0c, key=b"a") + req(0x0c, key=b"b") + req(0x0a),
])

write("backend_response", [
    res(0x00, extras=struct.pack(">I", 5), value=b"value", cas=9), res(0x0c, extras=struct.pack(">I", 0), key=b"k", value=b"v"),
    res(0x00, status=1, value=b"Not found"), res(0x01, cas=10), res(0x05, value=struct.pack(">Q", 42)),
    res(0x10, key=b"pid", value=b"123") + res(0x10), res(0x40, extras=struct.pack(">II", 1, 2000000000), value=b"v"),
    res(0x01, data_type=0x80, cas=11), res(0x0a), b"\x81\x00",
    b"VALUE k 5 3\r\nabc\r\nEND\r\n", b"VALUE k 0 1 99\r\nx\r\nEND\r\n", b"STORED\r\n", b"NOT_STORED\r\n",
    b"EXISTS\r\n", b"NOT_FOUND\r\n", b"DELETED\r\n", b"TOUCHED\r\n", b"OK\r\n", b"42\r\n", b"VERSION 1.6.18\r\n",
    b"STAT pid 1\r\nEND\r\n", b"ERROR\r\n", b"CLIENT_ERROR bad command line format\r\n",
    b"SERVER_ERROR out of memory\r\n", b"VALUE k 0 99999999999\r\n",
])

write("chunk_format", [os.urandom(64), os.urandom(400), os.urandom(1184), os.urandom(3000), b"\x05keyss" + b"v" * 2000])

head = lambda v, flags=0, exp=0, cas=1, at=0: struct.pack(">BIIQI", v, flags, exp, cas, at)
write("l2_value", [head(1) + b"value", head(1, 5, 2000000000, 2**63, 7), head(1), head(2) + b"x", head(1)[:20], b""])

write("config", [
    "{}", json.dumps({"workers": 2, "l2": {"enabled": True, "data_dir": "/var/lib/rend"}}),
    json.dumps({"listen": {"port": 11211, "batch_port": 0}, "worker": {"max_connections": 100}}),
    '{"workers": 2, // comment\n "log_level": "debug"}', '{"workers": "two"}', '{"workers": 65}',
    '{"nope": 1}', '{"memcached": {"extra_args": ["-o", "modern"]}}', "[1]", "null", '{"l1": {"chunked": true}}',
])

write("control_request", [
    '{"cmd":"status"}', '{"cmd":"version"}', '{"cmd":"reload"}', '{"cmd":"restart"}',
    '{"cmd":"restart-worker","slot":0}', '{"cmd":"scale","workers":3}', '{"cmd":"stop"}',
    '[1]', '"status"', '{"cmd":5}', '{"cmd":"scale","workers":"3"}', '{"cmd":"scale","workers":1e100}',
    '{"cmd":"restart-worker","slot":99999999999}', '{', '',
])
