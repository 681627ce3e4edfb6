"""Chunked L1 (l1.chunked) against a real memcached: why it exists (a shift of value sizes under
a small memory), concurrent writers never producing a mixed value, lost chunks reading as a miss,
expiry on every item, and the L1 layout under the tiered modes."""
import hashlib
import os
import random
import re
import threading
import time

from rendtest import Client, ProcessTest, free_port, wait_until

CHUNKED = {"l1": {"chunked": True, "chunk_size": 1184}}
SMALL_CHUNKS = {"l1": {"chunked": True, "chunk_size": 384}}


def send_sets(client, items, batch=2000):
    """Pipelined `noreply` sets in batches, then one round trip so all of them were executed."""
    for i in range(0, len(items), batch):
        client.send(b"".join(b"set %s 0 0 %d noreply\r\n%s\r\n" % (k, len(v), v) for k, v in items[i:i + batch]))
        client.call(b"version\r\n")


def count_hits(client, keys, batch=100):
    hits = 0
    for i in range(0, len(keys), batch):
        reply = client.call(b"get " + b" ".join(keys[i:i + batch]) + b"\r\n")
        hits += reply.count(b"VALUE ")
    return hits


def head_token(direct, key):
    """The token of a chunked value, read straight from memcached's head item."""
    stored = direct.get(key)
    assert stored is not None and stored[:4] == b"RCH1", stored[:8] if stored else stored
    return stored[24:40]


def chunk_key(token, index):
    return b"~c" + token.hex().encode() + b"%08x" % index


def self_describing(writer, seq, size):
    """A value whose bytes all derive from its header: a reader can tell a torn or mixed one."""
    head = b"%d:%d:%d:" % (writer, seq, size)
    body = hashlib.sha256(head).digest() * (size // 32 + 1)
    return (head + body)[:size]


def well_formed(value):
    m = re.match(rb"(\d+):(\d+):(\d+):", value)
    return m is not None and value == self_describing(int(m[1]), int(m[2]), int(m[3]))


class SlabShiftTest(ProcessTest):
    """The motivating scenario: memcached with 64 MiB is filled with ~100-byte values, then as many
    bytes again of ~5000-byte values are written. Plain memcached has given its memory to the
    small class and keeps few of the new values; chunked, every item is the same size, so the new
    values take the memory of the old ones."""

    SMALL = 100
    LARGE = 5000
    MEMORY_MB = 64

    def hit_ratio(self, config):
        mc = self.start_memcached(memory_mb=self.MEMORY_MB)
        rend = self.start_rend(workers=1, l1_address=mc.address, config=config)
        c = self.client(rend.port, timeout=30)
        small_count = self.MEMORY_MB * 1024 * 1024 // self.SMALL
        filler = b"s" * self.SMALL
        send_sets(c, [(b"small:%d" % i, filler) for i in range(small_count)])
        large_count = small_count * self.SMALL // self.LARGE
        rng = random.Random(7)
        large = [(b"large:%d" % i, bytes([rng.randrange(97, 123)]) * self.LARGE) for i in range(large_count)]
        send_sets(c, large, batch=200)
        keys = [k for k, _ in large]
        hits = count_hits(c, keys)
        # Whatever is returned is exact.
        for k, v in rng.sample(large, 50):
            got = c.get(k)
            self.assertIn(got, (None, v), k)
        rend.stop()
        mc.stop()
        return hits / len(keys)

    def test_chunked_keeps_far_more_of_the_new_size(self):
        plain = self.hit_ratio({})
        chunked = self.hit_ratio(CHUNKED)
        print(f"\nafter {self.MEMORY_MB} MiB of {self.SMALL}-byte values then as many bytes of {self.LARGE}-byte values"
              f" (memcached -m {self.MEMORY_MB}): plain L1 keeps {plain:.1%} of the new values, chunked L1 {chunked:.1%}")
        self.assertLess(plain, 0.25)
        self.assertGreater(chunked, 0.6)
        self.assertGreater(chunked, 3 * plain)


class ChunkedConcurrencyTest(ProcessTest):
    def test_writers_and_readers_on_the_same_keys_never_see_a_mixed_value(self):
        rend = self.start_rend(workers=2, memory_mb=256, config=SMALL_CHUNKS)
        keys = [b"shared:%d" % i for i in range(4)]
        stop = threading.Event()
        errors = []
        last_written = {}
        lock = threading.Lock()
        reads = [0]

        def writer(wid):
            c = Client(rend.port, timeout=10)
            rng = random.Random(wid)
            seq = 0
            while not stop.is_set():
                key = rng.choice(keys)
                value = self_describing(wid, seq, rng.randrange(64, 6000))
                seq += 1
                reply = c.set(key, value)
                if reply != b"STORED\r\n":
                    errors.append(f"set {key!r}: {reply!r}")
                    return
                with lock:
                    last_written[(wid, key)] = value
            c.close()

        def reader(rid):
            c = Client(rend.port, timeout=10)
            rng = random.Random(100 + rid)
            while not stop.is_set():
                key = rng.choice(keys)
                value = c.get(key)
                if value is not None and not well_formed(value):
                    errors.append(f"mixed value under {key!r}: {value[:60]!r}")
                    return
                reads[0] += 1
            c.close()

        threads = [threading.Thread(target=writer, args=(i,)) for i in range(6)]
        threads += [threading.Thread(target=reader, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        time.sleep(6)
        stop.set()
        for t in threads:
            t.join(30)
        self.assertEqual(errors, [])
        print(f"\n{reads[0]} reads during concurrent writes, none mixed")
        self.assertGreater(reads[0], 500)
        # After the last write, every key reads back as one of the values written last.
        c = self.client(rend.port)
        for key in keys:
            value = c.get(key)
            self.assertIsNotNone(value, f"{key!r} unreadable after the writes finished")
            self.assertTrue(well_formed(value))
            self.assertIn(value, [v for (w, k), v in last_written.items() if k == key])

    def test_increments_from_many_connections_on_both_workers_are_atomic(self):
        rend = self.start_rend(workers=2, config=SMALL_CHUNKS)
        c = self.client(rend.port)
        self.assertEqual(c.set(b"counter", b"0"), b"STORED\r\n")
        appended = []

        def bump(n, tag):
            cc = Client(rend.port, timeout=10)
            for _ in range(n):
                r = cc.call(b"incr counter 1\r\n")
                if not r.strip().isdigit():
                    appended.append(f"incr: {r!r}")
                r = cc.call(b"append log 0 0 1\r\n%s\r\n" % tag)
                if r != b"STORED\r\n":  # the key exists all along
                    appended.append(f"append: {r!r}")
            cc.close()

        self.assertEqual(c.set(b"log", b""), b"STORED\r\n")
        threads = [threading.Thread(target=bump, args=(200, b"abcdefgh"[i:i + 1])) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(appended, [])
        self.assertEqual(c.get(b"counter"), b"1600")
        log = c.get(b"log")
        self.assertEqual(len(log), 1600, "every append landed once")
        for tag in b"abcdefgh":
            self.assertEqual(log.count(bytes([tag])), 200)


class ChunkedStorageTest(ProcessTest):
    def setUp(self):
        super().setUp()
        self.mc = self.start_memcached()
        self.rend = self.start_rend(workers=1, l1_address=self.mc.address, config=SMALL_CHUNKS)
        self.c = self.client(self.rend.port)
        self.direct = self.client(self.mc.port)

    def test_a_lost_or_foreign_chunk_makes_a_miss_never_a_wrong_value(self):
        value = bytes(range(256)) * 8
        self.assertEqual(self.c.set(b"k", value), b"STORED\r\n")
        token = head_token(self.direct, b"k")
        self.assertEqual(self.direct.call(b"delete " + chunk_key(token, 2) + b"\r\n"), b"DELETED\r\n")
        self.assertIsNone(self.c.get(b"k"))
        # The head of a value that can no longer be read is removed, so the key is free.
        wait_until(lambda: self.direct.get(b"k") is None, 5, what="broken head removed")
        self.assertEqual(self.c.set(b"k", value, cmd=b"add"), b"STORED\r\n")
        self.assertEqual(self.c.get(b"k"), value)
        # A chunk with the right name but another token inside (a torn or foreign write).
        token = head_token(self.direct, b"k")
        stored = self.direct.get(chunk_key(token, 0))
        forged = b"\x00" * 16 + stored[16:]
        self.assertEqual(self.direct.set(chunk_key(token, 0), forged), b"STORED\r\n")
        self.assertIsNone(self.c.get(b"k"))

    def test_add_on_a_key_whose_chunks_were_evicted_stores(self):
        value = b"v" * 3000
        self.assertEqual(self.c.set(b"a", value), b"STORED\r\n")
        token = head_token(self.direct, b"a")
        self.assertEqual(self.direct.call(b"delete " + chunk_key(token, 0) + b"\r\n"), b"DELETED\r\n")
        # memcached has the head but not the value: the key holds nothing, so add must store.
        self.assertEqual(self.c.set(b"a", b"new", cmd=b"add"), b"STORED\r\n")
        self.assertEqual(self.c.get(b"a"), b"new")
        self.assertEqual(self.c.set(b"a", b"again", cmd=b"add"), b"NOT_STORED\r\n")

    def test_overwrites_delete_the_old_chunks(self):
        self.assertEqual(self.c.set(b"o", b"1" * 5000), b"STORED\r\n")
        old = head_token(self.direct, b"o")
        self.assertEqual(self.c.set(b"o", b"2" * 5000), b"STORED\r\n")
        wait_until(lambda: self.direct.get(chunk_key(old, 0)) is None, 5, what="old chunks deleted")
        self.assertEqual(self.c.call(b"delete o\r\n"), b"DELETED\r\n")
        new = head_token(self.direct, b"o") if self.direct.get(b"o") is not None else None
        self.assertIsNone(new)

    def test_every_item_expires_and_touch_and_gat_move_the_expiry(self):
        value = b"e" * 2500
        self.assertEqual(self.c.set(b"short", value, exptime=2), b"STORED\r\n")
        self.assertEqual(self.c.set(b"touched", value, exptime=2), b"STORED\r\n")
        self.assertEqual(self.c.set(b"gatted", value, exptime=2), b"STORED\r\n")
        token = head_token(self.direct, b"short")
        self.assertEqual(self.c.call(b"touch touched 100\r\n"), b"TOUCHED\r\n")
        self.assertTrue(self.c.call(b"gat 100 gatted\r\n").startswith(b"VALUE gatted 0 2500\r\n"))
        time.sleep(3.2)
        self.assertIsNone(self.c.get(b"short"))
        self.assertIsNone(self.direct.get(chunk_key(token, 0)), "the chunks expire with the head")
        self.assertEqual(self.c.get(b"touched"), value)
        self.assertEqual(self.c.get(b"gatted"), value)
        # An append keeps the expiry the touch gave the value.
        self.assertEqual(self.c.set(b"touched", b"+", cmd=b"append"), b"STORED\r\n")
        self.assertEqual(self.c.get(b"touched"), value + b"+")


class FlushOrderTest(ProcessTest):
    """A pipelined `set; flush_all; get` answers as memcached: the flush comes after the set and
    before the get, even where each of them takes several steps."""

    def check(self, rend):
        c = self.client(rend.port)
        for i in range(20):
            c.send(b"set f%d 0 0 3000\r\n%s\r\nflush_all\r\nget f%d\r\n" % (i, b"x" * 3000, i))
            self.assertEqual(c.read_line(), b"STORED\r\n")
            self.assertEqual(c.read_line(), b"OK\r\n")
            self.assertEqual(c.read_line(), b"END\r\n")
            c.send(b"flush_all\r\nset f%d 0 0 1\r\ny\r\nget f%d\r\n" % (i, i))
            self.assertEqual(c.read_line(), b"OK\r\n")
            self.assertEqual(c.read_line(), b"STORED\r\n")
            self.assertEqual(c.read_until(b"END\r\n"), b"VALUE f%d 0 1\r\ny\r\nEND\r\n" % i)

    def test_chunked_l1only(self):
        self.check(self.start_rend(workers=1, config=SMALL_CHUNKS))

    def test_l1l2_plain_and_chunked(self):
        for config in ({}, SMALL_CHUNKS):
            rend = self.start_rend(workers=1, config={
                **config,
                "l2": {"enabled": True, "data_dir": os.path.join(self.tmp, f"l2-{len(config)}"),
                       "address": os.path.join(self.tmp, f"l2-{len(config)}.sock")},
                "listen": {"batch_port": 0},
            })
            self.check(rend)
            rend.stop()


class ChunkedTieredTest(ProcessTest):
    def test_l1_holds_the_chunked_layout_and_backfills_it(self):
        mc = self.start_memcached()
        batch = free_port()
        rend = self.start_rend(workers=1, l1_address=mc.address, config={
            **SMALL_CHUNKS,
            "l2": {"enabled": True, "data_dir": os.path.join(self.tmp, "l2"),
                   "address": os.path.join(self.tmp, "rend-l2.sock")},
            "listen": {"batch_port": batch},
        })
        c = self.client(rend.port)
        direct = self.client(mc.port)
        value = os.urandom(4000)
        self.assertEqual(c.set(b"t", value, flags=9), b"STORED\r\n")
        token = head_token(direct, b"t")
        self.assertIsNotNone(direct.get(chunk_key(token, 0)))
        self.assertEqual(direct.call(b"delete t\r\n"), b"DELETED\r\n")
        self.assertEqual(c.call(b"get t\r\n"), b"VALUE t 9 4000\r\n" + value + b"\r\nEND\r\n")  # from L2
        wait_until(lambda: direct.get(b"t") is not None, 5, what="backfill into chunked L1")
        head_token(direct, b"t")
        self.assertEqual(c.get(b"t"), value)


if __name__ == "__main__":
    import unittest
    unittest.main()
