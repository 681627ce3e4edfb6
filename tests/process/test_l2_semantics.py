"""rend-l2's cache semantics over real sockets: GetE, expiry, flush_all, pipelining, and the
atomicity of read-modify-write commands under concurrent connections."""
import struct
import threading
import time

from rendtest import binary_request, read_binary_response, wait_until
from test_l2_lifecycle import L2ProcessTest

GETE, GETEQ, NOOP, SET = 0x40, 0x41, 0x0A, 0x01


def run_threads(fns, timeout=60):
    errors = []

    def wrap(fn):
        try:
            fn()
        except Exception as e:  # reported below: a thread's failure must fail the test
            errors.append(repr(e))

    threads = [threading.Thread(target=wrap, args=(fn,), daemon=True) for fn in fns]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
        if t.is_alive():
            errors.append("thread did not finish in time")
    return errors


class L2GetETest(L2ProcessTest):
    def test_gete_returns_flags_and_absolute_expiry(self):
        l2 = self.start_l2()
        c = self.l2_client(l2, unix=True)
        now = int(time.time())
        self.assertEqual(c.set(b"ttl", b"hello", flags=0xCAFE, exptime=100), b"STORED\r\n")
        b = self.l2_client(l2, unix=True)  # one protocol per connection: binary gets its own
        b.send(binary_request(GETE, b"ttl", opaque=77))
        r = read_binary_response(b)
        self.assertEqual((r["opcode"], r["status"], r["opaque"]), (GETE, 0, 77))
        self.assertEqual(r["key"], b"")
        self.assertEqual(r["value"], b"hello")
        flags, expiry = struct.unpack(">II", r["extras"])
        self.assertEqual(flags, 0xCAFE)
        self.assertTrue(now + 99 <= expiry <= now + 101, f"expiry {expiry} vs now {now}")

    def test_gete_never_expiring_and_absolute_ttl(self):
        l2 = self.start_l2()
        c = self.l2_client(l2)
        at = int(time.time()) + 5000
        self.assertEqual(c.set(b"forever", b"v"), b"STORED\r\n")
        self.assertEqual(c.set(b"abs", b"v", exptime=at), b"STORED\r\n")
        b = self.l2_client(l2)
        b.send(binary_request(GETE, b"forever") + binary_request(GETE, b"abs"))
        self.assertEqual(struct.unpack(">II", read_binary_response(b)["extras"]), (0, 0))
        self.assertEqual(struct.unpack(">II", read_binary_response(b)["extras"]), (0, at))

    def test_geteq_hits_answer_as_gete_and_misses_are_silent(self):
        l2 = self.start_l2()
        c = self.l2_client(l2)
        self.assertEqual(c.set(b"h", b"x", flags=3), b"STORED\r\n")
        b = self.l2_client(l2)
        b.send(binary_request(GETEQ, b"missing", opaque=1) + binary_request(GETEQ, b"h", opaque=2) +
               binary_request(GETE, b"missing", opaque=3) + binary_request(NOOP, opaque=4))
        hit = read_binary_response(b)
        self.assertEqual((hit["opcode"], hit["status"], hit["opaque"], hit["value"]), (GETE, 0, 2, b"x"))
        miss = read_binary_response(b)
        self.assertEqual((miss["opcode"], miss["status"], miss["opaque"], miss["value"]), (GETE, 1, 3, b"Not found"))
        self.assertEqual(read_binary_response(b)["opcode"], NOOP)


class L2ExpiryTest(L2ProcessTest):
    def test_expired_items_are_invisible_everywhere(self):
        l2 = self.start_l2()
        c = self.l2_client(l2)
        self.assertEqual(c.set(b"short", b"v", exptime=1), b"STORED\r\n")
        self.assertEqual(c.set(b"neg", b"v", exptime=-1), b"STORED\r\n")
        self.assertEqual(c.set(b"past", b"v", exptime=int(time.time()) - 10), b"STORED\r\n")
        self.assertEqual(c.get(b"short"), b"v")
        for k in (b"neg", b"past"):
            self.assertIsNone(c.get(k), k)
        time.sleep(2.1)
        self.assertIsNone(c.get(b"short"))
        self.assertEqual(c.call(b"gets short neg past\r\n"), b"END\r\n")
        self.assertEqual(c.call(b"touch short 100\r\n"), b"NOT_FOUND\r\n")
        self.assertEqual(c.call(b"incr short 1\r\n"), b"NOT_FOUND\r\n")
        self.assertEqual(c.call(b"append short 0 0 1\r\nx\r\n"), b"NOT_STORED\r\n")
        self.assertEqual(c.call(b"add short 0 0 2\r\nv2\r\n"), b"STORED\r\n", "an expired key is free for add")
        self.assertEqual(c.get(b"short"), b"v2")
        b = self.l2_client(l2)
        b.send(binary_request(GETE, b"neg"))
        self.assertEqual(read_binary_response(b)["status"], 1)
        self.assertGreaterEqual(int(c.stats()["get_expired"]), 3)

    def test_compaction_filter_reclaims_expired_and_flushed_items(self):
        # FIFO never rewrites files, so the filter must run when memtables are flushed: expire a
        # memtable's worth of items, then push it out with more data.
        l2 = self.start_l2(max_bytes=16 * 1024 * 1024)  # 1 MiB memtables
        c = self.l2_client(l2, unix=True, timeout=30)
        c.send(b"".join(b"set exp%d 0 1 1000 noreply\r\n%s\r\n" % (i, b"e" * 1000) for i in range(300)))
        c.send(b"".join(b"set fl%d 0 0 1000 noreply\r\n%s\r\n" % (i, b"f" * 1000) for i in range(200)))
        self.assertEqual(c.call(b"flush_all 2\r\n"), b"OK\r\n")  # the fl* items go in 1 s
        time.sleep(2.2)
        filler = b"x" * 4000
        c.send(b"".join(b"set fill%d 0 0 4000 noreply\r\n%s\r\n" % (i, filler) for i in range(1000)))
        self.assertEqual(c.get(b"fill999"), filler)
        dropped = wait_until(lambda: int(c.stats()["l2_filter_dropped"]) >= 500 and c.stats()["l2_filter_dropped"],
                             15, interval=0.2, what="the filter dropping 500 dead items")
        print(f"filter dropped {dropped} dead items")
        self.assertIsNone(c.get(b"exp7"))
        self.assertIsNone(c.get(b"fl7"))
        self.assertEqual(c.get(b"fill0"), filler, "live items are untouched")

    def test_touch_and_gat_move_the_expiry(self):
        l2 = self.start_l2()
        c = self.l2_client(l2)
        self.assertEqual(c.set(b"t", b"v", exptime=1), b"STORED\r\n")
        self.assertEqual(c.set(b"g", b"w", exptime=1), b"STORED\r\n")
        self.assertEqual(c.call(b"touch t 100\r\n"), b"TOUCHED\r\n")
        self.assertEqual(c.call(b"gat 100 g\r\n"), b"VALUE g 0 1\r\nw\r\nEND\r\n")
        time.sleep(2.1)
        self.assertEqual(c.get(b"t"), b"v")
        self.assertEqual(c.get(b"g"), b"w")
        self.assertEqual(c.call(b"touch t -1\r\n"), b"TOUCHED\r\n")
        self.assertIsNone(c.get(b"t"))

    def test_flush_all_now_and_with_a_delay(self):
        l2 = self.start_l2()
        c = self.l2_client(l2)
        self.assertEqual(c.set(b"a", b"1"), b"STORED\r\n")
        self.assertEqual(c.call(b"flush_all\r\n"), b"OK\r\n")
        self.assertIsNone(c.get(b"a"))
        self.assertEqual(c.set(b"b", b"2"), b"STORED\r\n")
        self.assertEqual(c.get(b"b"), b"2", "written after the flush")
        # memcached: "flush_all 3" takes effect at now + 2, on items written up to then.
        self.assertEqual(c.call(b"flush_all 3\r\n"), b"OK\r\n")
        self.assertEqual(c.get(b"b"), b"2", "not yet")
        time.sleep(3.2)
        self.assertIsNone(c.get(b"b"))
        self.assertEqual(c.set(b"c", b"3"), b"STORED\r\n")
        self.assertEqual(c.get(b"c"), b"3")
        # Binary flush, quiet then loud.
        b = self.l2_client(l2)
        b.send(binary_request(0x18) + binary_request(NOOP))
        self.assertEqual(read_binary_response(b)["opcode"], NOOP)
        self.assertIsNone(c.get(b"c"))


class L2PipelineTest(L2ProcessTest):
    def test_1000_pipelined_gets_answered_in_order(self):
        l2 = self.start_l2()
        c = self.l2_client(l2, unix=True, timeout=30)
        c.send(b"".join(b"set p%d %d 0 %d noreply\r\n%s\r\n" % (i, i, len(b"v%d" % (i * 7)), b"v%d" % (i * 7))
                        for i in range(0, 1000, 2)))
        # Every other key is a miss; the keys come in a shuffled but known order.
        order = [(i * 389) % 1000 for i in range(1000)]
        c.send(b"".join(b"get p%d\r\n" % i for i in order))
        expected = b"".join((b"VALUE p%d %d %d\r\nv%d\r\nEND\r\n" % (i, i, len(b"v%d" % (i * 7)), i * 7))
                            if i % 2 == 0 else b"END\r\n" for i in order)
        self.assertEqual(c.read_exact(len(expected)), expected)
        self.assertEqual(c.read_available(0.2), b"", "nothing more")
        st = c.stats()
        self.assertLess(int(st["l2_batches"]), 1000, "gets were batched")

    def test_binary_getkq_batch_with_noop(self):
        l2 = self.start_l2()
        c = self.l2_client(l2)
        c.send(b"".join(binary_request(0x11, b"k%d" % i, b"val%d" % i, struct.pack(">II", i, 0))
                        for i in range(0, 300, 3)))
        c.send(b"".join(binary_request(0x0D, b"k%d" % i, opaque=i) for i in range(300)) + binary_request(NOOP))
        for i in range(0, 300, 3):
            r = read_binary_response(c)
            self.assertEqual((r["opcode"], r["opaque"], r["key"], r["value"]), (0x0D, i, b"k%d" % i, b"val%d" % i))
            self.assertEqual(struct.unpack(">I", r["extras"])[0], i)
        self.assertEqual(read_binary_response(c)["opcode"], NOOP)


class L2AtomicityTest(L2ProcessTest):
    def test_concurrent_incr_loses_nothing(self):
        l2 = self.start_l2(threads=4)
        setup = self.l2_client(l2)
        self.assertEqual(setup.set(b"counter", b"0"), b"STORED\r\n")
        replies = []
        lock = threading.Lock()

        def worker(pipelined):
            c = l2.unix_client(timeout=30)
            try:
                got = []
                if pipelined:
                    c.send(b"incr counter 1\r\n" * 500)
                    got = [int(c.read_line()) for _ in range(500)]
                else:
                    for _ in range(500):
                        got.append(int(c.call(b"incr counter 1\r\n")))
                with lock:
                    replies.extend(got)
            finally:
                c.close()

        errors = run_threads([lambda p=(n % 2 == 0): worker(p) for n in range(8)])
        self.assertEqual(errors, [])
        self.assertEqual(setup.get(b"counter"), b"4000")
        self.assertEqual(sorted(replies), list(range(1, 4001)), "every incr saw a distinct value")

    def test_concurrent_appends_keep_every_chunk(self):
        l2 = self.start_l2(threads=4)
        setup = self.l2_client(l2)
        self.assertEqual(setup.set(b"log", b"^"), b"STORED\r\n")

        def worker(n):
            c = l2.unix_client(timeout=30)
            try:
                chunks = [b"[%02d:%05d]" % (n, i) for i in range(200)]  # 10 bytes each
                c.send(b"".join(b"append log 0 0 10\r\n%s\r\n" % ch for ch in chunks[:100]))
                for _ in range(100):
                    line = c.read_line()
                    assert line == b"STORED\r\n", line
                for ch in chunks[100:]:
                    assert c.call(b"append log 0 0 10\r\n%s\r\n" % ch) == b"STORED\r\n"
            finally:
                c.close()

        errors = run_threads([lambda n=n: worker(n) for n in range(8)])
        self.assertEqual(errors, [])
        value = setup.get(b"log")
        self.assertEqual(len(value), 1 + 8 * 200 * 10)
        for n in range(8):
            positions = [value.index(b"[%02d:%05d]" % (n, i)) for i in range(200)]
            self.assertEqual(positions, sorted(positions), "one connection's appends stay in order")

    def test_sets_and_cas_race_without_lost_updates(self):
        # A read-modify-write loop with gets/cas from 6 connections: exactly the successful cas
        # operations are reflected, which needs the check and the write to be atomic.
        l2 = self.start_l2(threads=4)
        setup = self.l2_client(l2)
        self.assertEqual(setup.set(b"cv", b"0"), b"STORED\r\n")
        wins = []
        lock = threading.Lock()

        def worker():
            c = l2.client(timeout=30)
            try:
                mine = 0
                while mine < 100:
                    line = c.call(b"gets cv\r\n").split(b"\r\n")
                    cas = int(line[0].split()[4])
                    value = int(line[1]) + 1
                    data = b"%d" % value
                    r = c.call(b"cas cv 0 0 %d %d\r\n%s\r\n" % (len(data), cas, data))
                    if r == b"STORED\r\n":
                        mine += 1
                    else:
                        assert r == b"EXISTS\r\n", r
                with lock:
                    wins.append(mine)
            finally:
                c.close()

        errors = run_threads([worker for _ in range(6)], timeout=120)
        self.assertEqual(errors, [])
        self.assertEqual(setup.get(b"cv"), b"600")


class L2StatsTest(L2ProcessTest):
    def test_stats_have_memcached_counters_and_rocksdb_figures(self):
        l2 = self.start_l2()
        c = self.l2_client(l2)
        c.set(b"a", b"1")
        c.get(b"a")
        c.get(b"b")
        st = c.stats()
        for name in ("pid", "uptime", "curr_items", "cmd_get", "get_hits", "get_misses", "cmd_set",
                     "curr_connections", "rocksdb.estimate-live-data-size", "rocksdb.total-sst-files-size",
                     "rocksdb.estimate-pending-compaction-bytes", "rocksdb.actual-delayed-write-rate",
                     "rocksdb.is-write-stopped", "rocksdb.stall.micros", "rocksdb.block.cache.hit",
                     "rocksdb.block.cache.miss", "l2_data_dir_bytes"):
            self.assertIn(name, st)
        self.assertEqual((st["cmd_get"], st["get_hits"], st["get_misses"], st["cmd_set"]), ("2", "1", "1", "1"))
        self.assertEqual(int(st["pid"]), l2.proc.pid)
        self.assertGreater(int(st["l2_data_dir_bytes"]), 0)
        # Binary STAT: the same report as packets, ending with an empty one.
        b = self.l2_client(l2)
        b.send(binary_request(0x10, opaque=5))
        names = []
        while True:
            r = read_binary_response(b)
            self.assertEqual((r["opcode"], r["opaque"], r["status"]), (0x10, 5, 0))
            if not r["key"]:
                break
            names.append(r["key"].decode())
        self.assertIn("rocksdb.block.cache.miss", names)
        self.assertEqual(c.call(b"stats reset\r\n"), b"RESET\r\n")
        self.assertEqual(c.stats()["cmd_get"], "0")
