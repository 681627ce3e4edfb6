"""The L1/L2 orchestrations, row by row of DESIGN §4, on the main port (l1l2) and the batch port
(l1l2batch), against a real memcached (L1) and a real rend-l2 (L2). After each operation the
test reads each tier directly (memcached's own port, rend-l2's own port) to check its state."""
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

from rendtest import (BUILD_DIR, Client, ProcessTest, binary_request, free_port, read_binary_response, unix_accepts,
                      wait_until, port_accepts)

REND_L2 = os.path.join(BUILD_DIR, "l2", "rend-l2")


class L2Server:
    """A standalone rend-l2 with its data in the test's temp dir, on a unix socket and a TCP port."""

    def __init__(self, tmpdir, max_bytes=1 << 30):
        self.socket = os.path.join(tmpdir, "l2.sock")
        self.port = free_port()
        self.data_dir = os.path.join(tmpdir, "l2data")
        self.max_bytes = max_bytes
        self.log_path = os.path.join(tmpdir, "rend-l2.log")
        self.proc = None

    def start(self):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([REND_L2, "--socket", self.socket, "--data-dir", self.data_dir, "--max-bytes",
                                      str(self.max_bytes), "--port", str(self.port)], stdout=log, stderr=log)
        log.close()
        wait_until(lambda: unix_accepts(self.socket) and port_accepts(self.port), 20, what="rend-l2")
        self.started_at = time.monotonic()
        return self

    def wait_out_start_window(self):
        """Right after start rend-l2 flags every tracked write as raced for L1's timeout plus a
        second (2 s by default): wait until that has passed."""
        time.sleep(max(0.0, self.started_at + 2.2 - time.monotonic()))

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def get_expiry(port, key):
    """rend-l2's absolute expiry of `key` through GetE (None on a miss), on a binary connection."""
    client = Client(port)
    try:
        client.send(binary_request(0x40, key=key))
        r = read_binary_response(client)
    finally:
        client.close()
    if r["status"] != 0:
        return None
    return struct.unpack(">II", r["extras"])[1]


def eventually(test, fn, expected, delta=None, what=""):
    """rend answers a read before its follow-up writes (backfill, touches) land: wait for them."""
    def ok():
        v = fn()
        if delta is None:
            return v == expected
        return v is not None and abs(v - expected) <= delta
    try:
        wait_until(ok, 5, what=what)
    except AssertionError:
        test.fail(f"{what}: got {fn()!r}, expected {expected!r}" + (f" within {delta}" if delta else ""))


def l1_ttl(client, key):
    """memcached's remaining TTL of `key` (meta get): -1 = never, None = miss."""
    reply = client.call(b"mg " + key + b" t\r\n")
    if reply.startswith(b"EN"):
        return None
    return int(reply.split()[1][1:])


TOMBSTONE = "tombstone"
# l1_tombstone_ttl_s of the default timeouts (L1 1000 ms + L2 2000 ms, rounded up, + 2 s).
TOMBSTONE_TTL = 5


class L1Direct:
    """memcached (L1) read and written directly, in rend's tiered format: each value is stored
    behind an 8-byte header holding L2's CAS; an empty item is a tombstone (worker/l1_envelope.h)."""

    def __init__(self, client):
        self.c = client

    def get(self, key):
        v = self.c.get(key)
        if v is None:
            return None
        if v == b"":
            return TOMBSTONE
        assert len(v) >= 8, f"L1 value of {key!r} lacks rend's header: {v!r}"
        return v[8:]

    def cas_of(self, key):
        v = self.c.get(key)
        return None if v is None else struct.unpack(">Q", v[:8])[0]

    def set(self, key, value, cas=1):
        return self.c.set(key, struct.pack(">Q", cas) + value)

    def call(self, data):
        return self.c.call(data)


class TieredTest(ProcessTest):
    def setUp(self):
        super().setUp()
        self.mc = self.start_memcached()
        self.l2 = L2Server(self.tmp).start()
        self.addCleanup(self.l2.stop)
        self.rend = self.start_rend(workers=2, l1_address=self.mc.address, config={
            "l2": {"enabled": True, "supervised": False, "address": self.l2.socket},
            "listen": {"batch_port": free_port()},
        })
        self.main = self.client(self.rend.port)
        self.batch = self.client(self.rend.config["listen"]["batch_port"])
        self.l1 = L1Direct(self.client(self.mc.port))
        self.l2c = self.client(self.l2.port)

    def both(self, key, l1, l2):
        self.assertEqual(self.l1.get(key), l1, f"L1 state of {key!r}")
        self.assertEqual(self.l2c.get(key), l2, f"L2 state of {key!r}")

    # ---- set -----------------------------------------------------------------------------------
    def test_set_main_writes_both_tiers(self):
        self.assertEqual(self.main.set(b"s1", b"v1"), b"STORED\r\n")
        self.both(b"s1", b"v1", b"v1")

    def test_set_batch_refreshes_only_hot_keys(self):
        self.assertEqual(self.batch.set(b"cold", b"v"), b"STORED\r\n")
        self.both(b"cold", None, b"v")
        self.l1.set(b"hot", b"old")
        self.assertEqual(self.batch.set(b"hot", b"new"), b"STORED\r\n")
        self.both(b"hot", b"new", b"new")

    # ---- add -----------------------------------------------------------------------------------
    def test_add(self):
        for port, client, l1_after in ((b"main", self.main, b"a"), (b"batch", self.batch, None)):
            key = b"add-" + port
            self.assertEqual(client.set(key, b"a", cmd=b"add"), b"STORED\r\n")
            self.both(key, l1_after, b"a")
            self.assertEqual(client.set(key, b"b", cmd=b"add"), b"NOT_STORED\r\n")
            self.both(key, l1_after, b"a")
        # The batch port's add refreshes a hot L1 copy (replace).
        self.l1.set(b"add-hot", b"stale")
        self.assertEqual(self.batch.set(b"add-hot", b"fresh", cmd=b"add"), b"STORED\r\n")
        self.both(b"add-hot", b"fresh", b"fresh")

    # ---- replace -------------------------------------------------------------------------------
    def test_replace(self):
        for client in (self.main, self.batch):
            self.l1.call(b"flush_all\r\n")
            self.assertEqual(client.set(b"r", b"x", cmd=b"replace"), b"NOT_STORED\r\n")
            self.both(b"r", None, None)
            self.l2c.set(b"r", b"l2only")
            self.assertEqual(client.set(b"r", b"y", cmd=b"replace"), b"STORED\r\n")
            self.both(b"r", None, b"y")  # L1 miss is fine
            self.l1.set(b"r", b"hot")
            self.assertEqual(client.set(b"r", b"z", cmd=b"replace"), b"STORED\r\n")
            self.both(b"r", b"z", b"z")
            self.l2c.call(b"delete r\r\n")

    # ---- append / prepend ----------------------------------------------------------------------
    def test_append_prepend(self):
        for client in (self.main, self.batch):
            self.l2c.call(b"flush_all\r\n")
            self.l1.call(b"flush_all\r\n")
            self.assertEqual(client.set(b"ap", b"x", cmd=b"append"), b"NOT_STORED\r\n")
            self.l2c.set(b"ap", b"mid")
            self.assertEqual(client.set(b"ap", b">", cmd=b"append"), b"STORED\r\n")
            self.both(b"ap", TOMBSTONE, b"mid>")
            self.l1.set(b"ap", b"mid>")
            self.assertEqual(client.set(b"ap", b"<", cmd=b"prepend"), b"STORED\r\n")
            # L2 gave the item a new CAS: L1's copy is replaced by a tombstone; reads go to L2.
            self.both(b"ap", TOMBSTONE, b"<mid>")
            self.assertEqual(self.main.get(b"ap"), b"<mid>")
            self.assertEqual(self.l1.get(b"ap"), TOMBSTONE, "no backfill over a tombstone")

    # ---- delete --------------------------------------------------------------------------------
    def test_delete(self):
        for client in (self.main, self.batch):
            self.main.set(b"d", b"v")
            self.assertEqual(client.call(b"delete d\r\n"), b"DELETED\r\n")
            self.both(b"d", TOMBSTONE, None)
            self.assertLessEqual(l1_ttl(self.l1, b"d"), TOMBSTONE_TTL, "a tombstone is short-lived")
            self.assertGreaterEqual(l1_ttl(self.l1, b"d"), TOMBSTONE_TTL - 2)
            self.assertEqual(client.call(b"delete d\r\n"), b"NOT_FOUND\r\n")
            # An L1-only copy (L2 lost it) is deleted too, and that counts as a delete.
            self.l1.set(b"d", b"orphan")
            self.assertEqual(client.call(b"delete d\r\n"), b"DELETED\r\n")
            self.both(b"d", TOMBSTONE, None)
            self.l1.call(b"delete d\r\n")

    # ---- touch ---------------------------------------------------------------------------------
    def test_touch(self):
        for client in (self.main, self.batch):
            self.main.set(b"t", b"v")
            self.assertEqual(client.call(b"touch t 500\r\n"), b"TOUCHED\r\n")
            now = time.time()
            self.assertAlmostEqual(get_expiry(self.l2.port, b"t"), now + 500, delta=2)
            self.assertAlmostEqual(l1_ttl(self.l1, b"t"), 500, delta=2)  # the reply waits for both tiers
            self.l2c.call(b"delete t\r\n")
            self.assertEqual(client.call(b"touch t 10\r\n"), b"NOT_FOUND\r\n")
            self.both(b"t", TOMBSTONE, None)  # no L1 copy may outlive L2's item

    # ---- get -----------------------------------------------------------------------------------
    def test_get_main_l1_first_then_l2_with_backfill(self):
        self.l2c.set(b"g", b"from-l2")
        self.l1.set(b"g", b"from-l1")
        self.assertEqual(self.main.get(b"g"), b"from-l1", "an L1 hit is served from L1")
        self.l1.call(b"delete g\r\n")
        self.assertEqual(self.main.get(b"g"), b"from-l2")
        eventually(self, lambda: self.l1.get(b"g"), b"from-l2", what="backfilled into L1")
        self.assertIsNone(self.main.get(b"nowhere"))

    def test_get_batch_does_not_backfill(self):
        self.l2c.set(b"gb", b"from-l2")
        self.assertEqual(self.batch.get(b"gb"), b"from-l2")
        self.assertIsNone(self.l1.get(b"gb"))

    def test_multiget_mixes_tiers_in_key_order(self):
        self.l1.set(b"m1", b"one")
        self.l2c.set(b"m2", b"two")
        self.l2c.set(b"m4", b"four")
        reply = self.main.call(b"get m1 m2 m3 m4 m1\r\n")
        self.assertEqual(reply, b"VALUE m1 0 3\r\none\r\nVALUE m2 0 3\r\ntwo\r\nVALUE m4 0 4\r\nfour\r\n"
                                b"VALUE m1 0 3\r\none\r\nEND\r\n")
        eventually(self, lambda: self.l1.get(b"m4"), b"four", what="backfilled into L1")

    def test_backfill_keeps_l2_expiry(self):
        self.assertEqual(self.main.set(b"ttl", b"v", exptime=100), b"STORED\r\n")
        self.l1.call(b"delete ttl\r\n")
        self.assertEqual(self.main.get(b"ttl"), b"v")
        l2_left = get_expiry(self.l2.port, b"ttl") - time.time()
        eventually(self, lambda: l1_ttl(self.l1, b"ttl"), l2_left, delta=2, what="L1 copy expires with L2's")
        # And a value without expiry stays without one.
        self.main.set(b"forever", b"v")
        self.l1.call(b"delete forever\r\n")
        self.main.get(b"forever")
        eventually(self, lambda: l1_ttl(self.l1, b"forever"), -1, what="no expiry")

    # ---- gat -----------------------------------------------------------------------------------
    def test_gat_main(self):
        self.main.set(b"ga", b"v", exptime=50)
        reply = self.main.call(b"gat 700 ga\r\n")
        self.assertEqual(reply, b"VALUE ga 0 1\r\nv\r\nEND\r\n")
        self.assertAlmostEqual(l1_ttl(self.l1, b"ga"), 700, delta=2)
        eventually(self, lambda: get_expiry(self.l2.port, b"ga"), time.time() + 700, delta=2,
                   what="an L1 hit also touches L2")
        self.l1.call(b"delete ga\r\n")
        self.assertEqual(self.main.call(b"gat 900 ga\r\n"), b"VALUE ga 0 1\r\nv\r\nEND\r\n")
        eventually(self, lambda: l1_ttl(self.l1, b"ga"), 900, delta=2, what="L1 miss: added with the new TTL")

    def test_gat_batch(self):
        self.main.set(b"gb2", b"v", exptime=50)
        self.assertEqual(self.batch.call(b"gat 800 gb2\r\n"), b"VALUE gb2 0 1\r\nv\r\nEND\r\n")
        self.assertAlmostEqual(get_expiry(self.l2.port, b"gb2"), time.time() + 800, delta=2)
        eventually(self, lambda: l1_ttl(self.l1, b"gb2"), 800, delta=2, what="L1 keeps the requested TTL")

    def test_gat_drops_an_l1_copy_l2_has_lost(self):
        # Main port: L1 answers the gat, the L2 touch finds nothing, so L1's copy is buried.
        self.main.set(b"gl", b"v", exptime=50)
        self.l2c.call(b"delete gl\r\n")
        self.assertEqual(self.main.call(b"gat 900 gl\r\n"), b"VALUE gl 0 1\r\nv\r\nEND\r\n")
        eventually(self, lambda: self.l1.get(b"gl"), TOMBSTONE, what="L1 copy buried after L2's touch missed")
        self.assertIsNone(self.main.get(b"gl"))
        # Batch port: L2 is asked first and misses; L1's copy must not live on either.
        self.l1.set(b"gl2", b"orphan")
        self.assertEqual(self.batch.call(b"gat 900 gl2\r\n"), b"END\r\n")
        eventually(self, lambda: self.l1.get(b"gl2"), TOMBSTONE, what="L1 copy buried after L2's gat missed")

    def test_multi_get_past_the_reply_cap_fails_as_memcached_does(self):
        # 100 × 720 KiB: past the 64 MiB cap of one get's reply.
        big = b"x" * (720 * 1024)
        self.assertEqual(self.main.set(b"huge", big), b"STORED\r\n")
        self.l1.call(b"delete huge\r\n")  # the first get's reads go to L2
        for port in (self.rend.port, self.rend.config["listen"]["batch_port"]):
            client = self.client(port, timeout=60)  # 70 MiB from L2 (and backfill adds) on a busy machine
            self.assertEqual(client.call(b"get" + b" huge" * 100 + b"\r\n"),
                             b"SERVER_ERROR out of memory writing get response\r\n")
            self.assertEqual(client.get(b"huge"), big)

    def test_touch_and_gat_leave_a_tombstone_short_lived(self):
        # A tombstone given a client's TTL (or none) would keep a key out of L1 for that long.
        for port, how in ((self.rend.port, b"touch tt 0\r\n"), (self.rend.port, b"gat 0 tt\r\n"),
                          (self.rend.config["listen"]["batch_port"], b"gat 0 tt\r\n")):
            self.main.set(b"tt", b"5")
            self.assertEqual(self.main.call(b"incr tt 1\r\n"), b"6\r\n")
            self.assertEqual(self.l1.get(b"tt"), TOMBSTONE)
            c = self.client(port)
            self.assertIn(c.call(how), (b"TOUCHED\r\n", b"VALUE tt 0 1\r\n6\r\nEND\r\n"), how)
            eventually(self, lambda: self.l1.get(b"tt"), TOMBSTONE, what="still a tombstone")
            eventually(self, lambda: 0 <= (l1_ttl(self.l1, b"tt") or -1) <= TOMBSTONE_TTL, True,
                       what=f"{how!r}: the tombstone keeps its short TTL (got {l1_ttl(self.l1, b'tt')})")

    # ---- gets / cas ----------------------------------------------------------------------------
    def test_gets_and_cas_use_l2(self):
        for client in (self.main, self.batch):
            client.set(b"c", b"v1")
            l2_cas = self.l2c.call(b"gets c\r\n").split(b"\r\n")[0].split()[4]
            reply = client.call(b"gets c\r\n")
            self.assertEqual(reply.split(b"\r\n")[0].split()[4], l2_cas, "the CAS is L2's")
            self.assertEqual(client.call(b"cas c 0 0 2 %s\r\nv2\r\n" % l2_cas), b"STORED\r\n")
            self.assertEqual(self.l2c.get(b"c"), b"v2")
            if client is self.main:
                self.assertEqual(self.l1.get(b"c"), b"v2")
                self.assertEqual(self.l1.cas_of(b"c"), int(self.l2c.call(b"gets c\r\n").split()[4]),
                                 "L1's copy carries L2's CAS")
            self.assertEqual(client.call(b"cas c 0 0 2 %s\r\nv3\r\n" % l2_cas), b"EXISTS\r\n")
            self.assertEqual(client.call(b"cas nokey 0 0 2 1\r\nv3\r\n"), b"NOT_FOUND\r\n")

    # ---- incr / decr ---------------------------------------------------------------------------
    def test_incr_decr(self):
        for client in (self.main, self.batch):
            self.main.set(b"n", b"10")
            self.assertEqual(self.l1.get(b"n"), b"10")
            self.assertEqual(client.call(b"incr n 5\r\n"), b"15\r\n")
            self.both(b"n", TOMBSTONE, b"15")  # L1's copy buried; reads go to L2 for a few seconds
            self.assertEqual(client.call(b"decr n 20\r\n"), b"0\r\n")
            self.assertEqual(client.call(b"incr nokey 1\r\n"), b"NOT_FOUND\r\n")

    # ---- flush_all -----------------------------------------------------------------------------
    def test_flush_all(self):
        for client in (self.main, self.batch):
            self.main.set(b"f", b"v")
            self.assertEqual(client.call(b"flush_all\r\n"), b"OK\r\n")
            self.both(b"f", None, None)

    # ---- binary clients ------------------------------------------------------------------------
    def test_binary_get_from_l1_reports_l2s_cas(self):
        self.main.set(b"bc", b"val")
        l2_cas = int(self.l2c.call(b"gets bc\r\n").split()[4])
        self.assertEqual(self.l1.get(b"bc"), b"val")
        c = self.client(self.rend.port)
        c.send(binary_request(0x00, key=b"bc", opaque=3))
        r = read_binary_response(c)
        self.assertEqual((r["status"], r["value"], r["cas"]), (0, b"val", l2_cas))
        # A binary cas with that value is judged by L2 and succeeds.
        c.send(binary_request(0x01, key=b"bc", value=b"new", extras=b"\0" * 8, cas=l2_cas, opaque=4))
        self.assertEqual(read_binary_response(c)["status"], 0)
        self.assertEqual(self.l2c.get(b"bc"), b"new")
        self.assertEqual(self.l1.get(b"bc"), b"new")

    def test_binary_get_and_gete(self):
        self.main.set(b"bk", b"val", flags=7, exptime=300)
        self.l1.call(b"delete bk\r\n")
        c = self.client(self.rend.port)
        c.send(binary_request(0x0c, key=b"bk", opaque=5))  # GETK: L1 miss, L2 hit
        r = read_binary_response(c)
        self.assertEqual((r["status"], r["opcode"], r["key"], r["value"], r["opaque"]), (0, 0x0c, b"bk", b"val", 5))
        self.assertEqual(struct.unpack(">I", r["extras"])[0], 7)
        c.send(binary_request(0x40, key=b"bk", opaque=6))  # GetE: flags and absolute expiry
        r = read_binary_response(c)
        flags, expiry = struct.unpack(">II", r["extras"])
        self.assertEqual((r["status"], r["opcode"], flags, r["value"]), (0, 0x40, 7, b"val"))
        self.assertAlmostEqual(expiry, time.time() + 300, delta=3)
        c.send(binary_request(0x09, key=b"missing") + binary_request(0x0a, opaque=9))  # GETQ miss, NOOP
        r = read_binary_response(c)
        self.assertEqual((r["opcode"], r["opaque"]), (0x0a, 9))

    def test_gete_on_the_batch_port_reports_l2s_expiry(self):
        self.main.set(b"be", b"val", flags=3, exptime=400)
        c = self.client(self.rend.config["listen"]["batch_port"])
        c.send(binary_request(0x40, key=b"be", opaque=2))
        r = read_binary_response(c)
        flags, expiry = struct.unpack(">II", r["extras"])
        self.assertEqual((r["status"], flags, r["value"]), (0, 3, b"val"))
        self.assertAlmostEqual(expiry, time.time() + 400, delta=3)

    # ---- concurrent readers and writers on different workers ----------------------------------
    def test_a_backfill_racing_a_delete_cannot_bring_the_value_back(self):
        # The race itself: a read on another worker fetched "old" from L2 before the delete and
        # sends its backfill add after it. Here that late add is sent by hand.
        self.main.set(b"race", b"old")
        self.l1.call(b"delete race\r\n")
        self.assertEqual(self.main.call(b"delete race\r\n"), b"DELETED\r\n")
        self.assertEqual(self.l1.c.set(b"race", struct.pack(">Q", 1) + b"old", cmd=b"add"), b"NOT_STORED\r\n")
        self.assertIsNone(self.main.get(b"race"), "the deleted value is not served")
        # Once the tombstone has expired (a backfill that late has long given up), reads fill L1 again.
        self.main.set(b"race", b"new")
        self.l1.call(b"delete race\r\n")
        self.assertEqual(self.main.get(b"race"), b"new")
        eventually(self, lambda: self.l1.get(b"race"), b"new", what="backfill without a tombstone")

    def test_readers_racing_deletes_on_other_workers_never_revive_a_value(self):
        # One writer sets (on the batch port, so L1 does not get the value) and deletes a few
        # keys while readers on both workers read them: each L1 miss reads L2 and backfills.
        # Afterwards no key may hold in L1 a value L2 does not hold: a backfill that landed after
        # a delete would leave exactly that.
        keys = [b"rk%d" % i for i in range(4)]
        stop = threading.Event()
        errors = []
        stale = {}

        def reader():
            try:
                c = Client(self.rend.port)
                while not stop.is_set():
                    c.send(b"".join(b"get %s\r\n" % k for k in keys))
                    for _ in keys:
                        line = c.read_line()
                        if line.startswith(b"VALUE"):
                            c.read_exact(int(line.split()[3]) + 2)
                            c.read_line()
                c.close()
            except Exception as e:  # noqa: BLE001 - reported by the test thread
                errors.append(e)

        readers = [threading.Thread(target=reader) for _ in range(8)]
        for t in readers:
            t.start()
        try:
            writer = self.client(self.rend.config["listen"]["batch_port"])
            for round_ in range(100):
                # Pipelined, so the writes come as fast as rend takes them.
                ops = []
                for i, k in enumerate(keys):
                    v = b"v%d-%d" % (round_, i)
                    ops.append(b"set %s 0 0 %d\r\n%s\r\ndelete %s\r\n" % (k, len(v), v, k))
                writer.send(b"".join(ops) * 8)
                for _ in range(len(keys) * 8):
                    self.assertEqual(writer.read_line(), b"STORED\r\n")
                    self.assertIn(writer.read_line(), (b"DELETED\r\n", b"NOT_FOUND\r\n"))
                # Every key is deleted now; a backfill still in flight lands within milliseconds.
                time.sleep(0.02)
                for k in keys:
                    if self.l1.get(k) not in (None, TOMBSTONE):
                        stale[k] = self.l1.get(k)
        finally:
            stop.set()
            for t in readers:
                t.join(30)
        self.assertEqual(errors, [])
        self.assertGreater(int(self.main.stats()["get_hits"]), 100, "the readers found values mid-churn")
        self.assertEqual(stale, {}, "deleted values L1 went on serving")

    # ---- ordering ------------------------------------------------------------------------------
    def test_pipelined_writes_and_reads_on_one_key_stay_in_order(self):
        parts = []
        expected = []
        for i in range(300):
            v = b"v%d" % i
            parts.append(b"set o 0 0 %d\r\n%s\r\nget o\r\n" % (len(v), v))
            expected.append(b"STORED\r\nVALUE o 0 %d\r\n%s\r\nEND\r\n" % (len(v), v))
        self.main.send(b"".join(parts))
        want = b"".join(expected)
        self.assertEqual(self.main.read_exact(len(want)), want)
        self.both(b"o", b"v299", b"v299")


class Relay:
    """A TCP relay between rend and memcached that can swallow what rend sends (a request lost
    on the way, as on a connection that then times out), or hold it and deliver it later,
    connection by connection in the order the test chooses (requests that reach memcached late)."""

    def __init__(self, target_port):
        self.target_port = target_port
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.swallow = threading.Event()
        self.closed = False
        self.lock = threading.Lock()
        self.holding = False
        self.hold_opcode = None
        self.held = []  # [(destination socket, [bytes...])] in the order each was first held
        threading.Thread(target=self._accept, daemon=True).start()

    def hold(self):
        with self.lock:
            self.holding = True

    def hold_from_opcode(self, opcode):
        """Holds a connection's traffic from its first binary request with `opcode` on (rend
        sends one request per chunk when idle)."""
        with self.lock:
            self.hold_opcode = opcode

    def held_connections(self):
        with self.lock:
            return len(self.held)

    def release(self, order):
        """Delivers what was held, connection by connection: `order` lists indexes into the
        order of first holding, a pause between each."""
        with self.lock:
            for n, i in enumerate(order):
                if n:
                    time.sleep(0.2)
                dst, chunks = self.held[i]
                dst.sendall(b"".join(chunks))
            self.held = []
            self.holding = False
            self.hold_opcode = None

    def _forward(self, dst, data):
        with self.lock:
            for d, chunks in self.held:
                if d is dst:
                    chunks.append(data)
                    return
            if self.holding or (self.hold_opcode is not None and data[:2] == bytes([0x80, self.hold_opcode])):
                self.held.append((dst, [data]))
                return
        dst.sendall(data)

    def _accept(self):
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target_port))
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, src, dst, to_memcached):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if to_memcached and self.swallow.is_set():
                    continue
                if to_memcached:
                    self._forward(dst, data)
                else:
                    dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if not to_memcached:
            src.close()  # the other pump has stopped using both by now, or will on its next call
            dst.close()

    def close(self):
        self.closed = True
        self.listener.close()


class L1LostUpdateTest(ProcessTest):
    def test_an_l1_update_lost_to_a_timeout_leaves_no_stale_copy(self):
        # L2 takes `set k new`, the L1 set is lost and times out: the client has STORED, and
        # memcached, alive, still holds "old". Once the connection is back, L1 must not serve it.
        mc = self.start_memcached()
        relay = Relay(mc.port)
        self.addCleanup(relay.close)
        l2 = L2Server(self.tmp).start()
        self.addCleanup(l2.stop)
        rend = self.start_rend(workers=1, l1_address=f"127.0.0.1:{relay.port}", config={
            "l2": {"enabled": True, "supervised": False, "address": l2.socket},
            "l1": {"timeout_ms": 500},
            "listen": {"batch_port": 0},
        })
        c = self.client(rend.port, timeout=20)
        l1 = L1Direct(self.client(mc.port))
        self.assertEqual(c.set(b"k", b"old"), b"STORED\r\n")
        self.assertEqual(l1.get(b"k"), b"old")
        relay.swallow.set()
        self.assertEqual(c.set(b"k", b"new"), b"STORED\r\n", "L2 took it: the write stands")
        self.assertEqual(l1.get(b"k"), b"old", "the L1 set was lost")
        relay.swallow.clear()
        eventually(self, lambda: l1.get(b"k"), TOMBSTONE, what="the stale copy buried after reconnecting")
        self.assertEqual(c.get(b"k"), b"new")
        self.assertGreaterEqual(int(c.stats()["l1_timeouts"]), 1)


class CrossWorkerWriteRaceTest(ProcessTest):
    # Race window of the rend below: ceil((3000 + 500) / 1000) + 2 = 6 s (common/race_window.h).
    # L1's timeout is well above the time the relay holds L1 requests, even on a loaded machine.
    WINDOW_S = 6

    def start_two_workers_through_relay(self, batch_port=0):
        """rend with 2 workers whose L1 traffic passes a Relay; returns L1 (read directly),
        L2 (a client on rend-l2's port), the relay and rend."""
        mc = self.start_memcached()
        relay = Relay(mc.port)
        self.addCleanup(relay.close)
        l2 = L2Server(self.tmp).start()
        self.addCleanup(l2.stop)
        rend = self.start_rend(workers=2, l1_address=f"127.0.0.1:{relay.port}", config={
            "l2": {"enabled": True, "supervised": False, "address": l2.socket, "timeout_ms": 500},
            "l1": {"timeout_ms": 3000, "connections": 1},
            "listen": {"batch_port": batch_port},
        })
        l1 = L1Direct(self.client(mc.port))
        l2c = self.client(l2.port)
        l2.wait_out_start_window()
        return l1, l2c, relay, rend

    def one_client_per_worker(self, port):
        """{worker pid: a client connected to that worker} for both workers (the kernel spreads
        connections over them)."""
        by_worker = {}
        for _ in range(200):
            c = self.client(port, timeout=20)
            by_worker.setdefault(c.stats()["pid"], c)
            if len(by_worker) == 2:
                return by_worker
        self.fail("connections never reached both workers")

    def assert_buried_once_the_window_has_passed(self, l1, key, stale):
        start = time.monotonic()
        wait_until(lambda: l1.get(key) != stale, self.WINDOW_S + 5, what="L1's stale copy buried")
        self.assertGreaterEqual(time.monotonic() - start, self.WINDOW_S - 2.5, "buried once the window had passed")

    def test_two_workers_writing_one_key_leave_l1_with_l2s_value(self):
        # Worker A writes v1, worker B then v2: L2 applies them in that order, but A's L1 set
        # reaches memcached after B's (the relay holds both and delivers B's first), so L1 ends
        # with v1 while L2 holds v2. rend-l2 flagged B's write as racing A's; B buries its L1
        # copy once the race window has passed, and reads serve v2 again.
        l1, l2c, relay, rend = self.start_two_workers_through_relay()
        a, b = self.one_client_per_worker(rend.port).values()
        self.assertEqual(a.set(b"k", b"v0"), b"STORED\r\n")

        relay.hold()
        a.send(b"set k 0 0 2\r\nv1\r\n")
        wait_until(lambda: l2c.get(b"k") == b"v1", 5, what="L2 applied A's write")
        wait_until(lambda: relay.held_connections() == 1, 5, what="A's L1 set held")
        b.send(b"set k 0 0 2\r\nv2\r\n")
        wait_until(lambda: l2c.get(b"k") == b"v2", 5, what="L2 applied B's write")
        wait_until(lambda: relay.held_connections() == 2, 5, what="B's L1 set held")
        relay.release(order=[1, 0])  # B's L1 set lands first, A's older one after it
        self.assertEqual(a.read_line(), b"STORED\r\n")
        self.assertEqual(b.read_line(), b"STORED\r\n")
        self.assertEqual(l1.get(b"k"), b"v1", "the race happened: L1 holds the older value")
        # (rend's stats add up every worker's counters)
        self.assertEqual(a.stats()["raced_writes"], "1", "rend-l2 flagged the later write, and only that one")
        self.assertEqual(l2c.stats()["l2_raced_writes"], "1")

        self.assert_buried_once_the_window_has_passed(l1, b"k", b"v1")
        self.assertEqual(a.get(b"k"), b"v2")
        self.assertEqual(b.get(b"k"), b"v2")

    def test_a_backfill_landing_after_another_workers_write_does_not_stay(self):
        # Worker C reads k (an L1 miss), gets v0 from L2 and backfills it; its `add` reaches
        # memcached late (the relay holds it). Meanwhile worker B writes v1 through the batch
        # port: L2 takes it, and B's L1 step, a replace, finds nothing to replace. The late add
        # then puts v0 in L1. C's read was noted by rend-l2, so B's write was flagged, and B
        # buries the key once the race window has passed.
        batch_port = free_port()
        l1, l2c, relay, rend = self.start_two_workers_through_relay(batch_port)
        readers = self.one_client_per_worker(rend.port)
        writers = self.one_client_per_worker(batch_port)
        reader_pid = next(iter(readers))
        reader = readers[reader_pid]
        writer = next(w for pid, w in writers.items() if pid != reader_pid)
        self.assertEqual(writer.set(b"k", b"v0"), b"STORED\r\n")  # L2 only: the batch port
        self.assertIsNone(l1.get(b"k"))

        relay.hold_from_opcode(0x02)  # the backfill's add
        self.assertEqual(reader.get(b"k"), b"v0", "served at once; the backfill follows")
        wait_until(lambda: relay.held_connections() == 1, 5, what="the backfill held")
        self.assertEqual(writer.set(b"k", b"v1"), b"STORED\r\n")
        self.assertEqual(l2c.get(b"k"), b"v1")
        relay.release(order=[0])
        wait_until(lambda: l1.get(b"k") == b"v0", 5, what="the late backfill landed: L1 is stale")
        self.assertEqual(writer.stats()["raced_writes"], "1", "rend-l2 flagged the write")

        self.assert_buried_once_the_window_has_passed(l1, b"k", b"v0")
        self.assertEqual(reader.get(b"k"), b"v1")

    def test_rend_l2_flags_tracked_writes_after_another_processs_access(self):
        # What a worker asks of rend-l2 (data type 0x80 on a request: track this access) and
        # what it gets back (0x80 on the answer to a write: another process accessed the key
        # within the race window). The connections of one process count as one; other clients
        # (memccapable, an operator's telnet) never see the flag.
        l2 = L2Server(self.tmp).start()
        self.addCleanup(l2.stop)
        tracked = 0x80
        set_extras = struct.pack(">II", 0, 0)

        def write(client, key, data_type):
            client.send(binary_request(0x01, key=key, value=b"v", extras=set_extras, data_type=data_type))
            r = read_binary_response(client)
            self.assertEqual(r["status"], 0)
            return r["data_type"]

        # rend-l2 started just now: it cannot know what came before, so every tracked write
        # counts as raced for a while (L1's timeout + 1 s).
        probe = self.client(None, path=l2.socket)
        wait_until(lambda: write(probe, b"probe", tracked) == 0, 15, what="the start-up window passing")
        raced_before = int(self.client(l2.port).stats()["l2_raced_writes"])
        one, two = self.client(None, path=l2.socket), self.client(None, path=l2.socket)
        self.assertEqual(write(one, b"k", tracked), 0)
        self.assertEqual(write(two, b"k", tracked), 0, "another connection of the same process")
        child = subprocess.run([sys.executable, "-c", CHILD_WRITE, l2.socket, "k", str(tracked)],
                               capture_output=True, text=True, timeout=30)
        self.assertEqual(child.stdout.strip(), str(tracked), child.stderr)
        child = subprocess.run([sys.executable, "-c", CHILD_WRITE, l2.socket, "k", "0"],
                               capture_output=True, text=True, timeout=30)
        self.assertEqual(child.stdout.strip(), "0", "an untracked write is never flagged")
        tcp = self.client(l2.port)
        self.assertEqual(write(tcp, b"k", 0), 0)
        self.assertEqual(write(one, b"k", tracked), tracked, "the other process wrote k just now")
        self.assertEqual(write(one, b"fresh", tracked), 0)
        self.assertEqual(int(self.client(l2.port).stats()["l2_raced_writes"]) - raced_before, 2)


# A tracked (or not) binary set from another process; prints the answer's data type.
CHILD_WRITE = """
import socket, struct, sys
path, key, data_type = sys.argv[1], sys.argv[2].encode(), int(sys.argv[3])
s = socket.socket(socket.AF_UNIX)
s.settimeout(10)
s.connect(path)
extras = struct.pack(">II", 0, 0)
s.sendall(struct.pack(">BBHBBHIIQ", 0x80, 0x01, len(key), 8, data_type, 0, 8 + len(key) + 1, 0, 0) + extras + key + b"v")
header = b""
while len(header) < 24:
    header += s.recv(24 - len(header))
print(header[5])
"""


class L2DownTest(ProcessTest):
    def test_reads_fall_back_to_l1_writes_fail_then_recover(self):
        mc = self.start_memcached()
        l2 = L2Server(self.tmp).start()
        self.addCleanup(l2.stop)
        rend = self.start_rend(workers=1, l1_address=mc.address, config={
            "l2": {"enabled": True, "supervised": False, "address": l2.socket},
            "listen": {"batch_port": 0},
        })
        c = self.client(rend.port)
        self.assertEqual(c.set(b"k", b"v"), b"STORED\r\n")
        workers = rend.worker_pids()
        l2.stop(signal.SIGKILL)
        self.assertEqual(c.get(b"k"), b"v", "an L1 hit is still served")
        self.assertIsNone(c.get(b"only-in-l2"), "an L1 miss is a miss")
        self.assertEqual(c.set(b"k", b"w"), b"SERVER_ERROR backend unavailable\r\n")
        self.assertEqual(c.get(b"k"), b"v", "a refused write changed nothing")
        stats = c.stats()
        self.assertGreaterEqual(int(stats["l2_fallbacks"]), 1)
        self.assertGreaterEqual(int(stats["l2_write_failures"]), 1)
        l2.start()
        wait_until(lambda: c.set(b"k", b"w") == b"STORED\r\n", 10, what="writes after L2 is back")
        self.assertEqual(c.get(b"k"), b"w")
        self.assertEqual(rend.worker_pids(), workers, "no worker was restarted")

    def test_a_write_l2_timed_out_on_buries_the_l1_copy(self):
        # rend-l2 stops answering mid-write: the client gets SERVER_ERROR, but L2 may still apply
        # the write once it resumes, so L1's copy (the old value) must not outlive the doubt.
        mc = self.start_memcached()
        l2 = L2Server(self.tmp).start()
        self.addCleanup(l2.stop)
        rend = self.start_rend(workers=1, l1_address=mc.address, config={
            "l2": {"enabled": True, "supervised": False, "address": l2.socket, "timeout_ms": 500},
            "listen": {"batch_port": 0},
        })
        c = self.client(rend.port, timeout=20)
        l1 = L1Direct(self.client(mc.port))
        self.assertEqual(c.set(b"k", b"old"), b"STORED\r\n")
        l2.proc.send_signal(signal.SIGSTOP)
        try:
            self.assertEqual(c.set(b"k", b"new"), b"SERVER_ERROR backend timeout\r\n")
            eventually(self, lambda: l1.get(b"k"), TOMBSTONE, what="L1's copy buried")
        finally:
            l2.proc.send_signal(signal.SIGCONT)
        # Whatever L2 made of the write, rend now serves what L2 holds.
        l2_value = self.client(l2.port).get(b"k")
        self.assertIn(l2_value, (b"old", b"new"))
        wait_until(lambda: c.get(b"k") == l2_value, 10, what="reads agree with L2")
