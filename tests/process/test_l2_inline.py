"""rend-l2 answering from its event loop: reads whose data is in memory (a memtable, the block
cache or the OS page cache) and small writes are served without the round trip to a worker
thread; what needs the disk falls back to a worker; replies keep request order whichever path
each request takes."""
import glob
import os
import threading
import unittest

from rendtest import binary_request, read_binary_response
from test_l2_lifecycle import L2ProcessTest

GETE = 0x40
PATHS = ("l2_inline_reads", "l2_offloaded_reads", "l2_inline_writes", "l2_offloaded_writes", "l2_inline_fallbacks",
         "l2_loop_page_cache_reads", "l2_loop_would_block")


def filesystem_of(path):
    """The type of the file system holding `path` (the longest mount point above it)."""
    best, kind = "", ""
    with open("/proc/mounts") as mounts:
        for line in mounts:
            _, point, fstype = line.split()[:3]
            if (path == point or path.startswith(point.rstrip("/") + "/")) and len(point) > len(best):
                best, kind = point, fstype
    return kind


def drop_from_page_cache(data_dir):
    """Asks the kernel to forget the table files' cached pages (clean pages: RocksDB synced them)."""
    for name in glob.glob(os.path.join(data_dir, "*.sst")):
        fd = os.open(name, os.O_RDONLY)
        try:
            os.fdatasync(fd)  # DONTNEED skips dirty pages
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def paths(client):
    st = client.stats()
    return {name: int(st[name]) for name in PATHS}


def delta(before, after):
    return {name: after[name] - before[name] for name in PATHS if after[name] != before[name]}


class L2InlineTest(L2ProcessTest):
    def test_cached_reads_run_on_the_loop_and_disk_reads_on_a_worker(self):
        l2 = self.start_l2()
        c = self.l2_client(l2, unix=True, timeout=30)
        c.send(b"".join(b"set k%d 0 0 4 noreply\r\nv%03d\r\n" % (i, i % 1000) for i in range(5000)))
        before = paths(c)
        self.assertEqual(c.get(b"k4999"), b"v999")
        self.assertEqual(delta(before, paths(c)), {"l2_inline_reads": 1}, "in the memtable")
        c.close()
        self.assertEqual(l2.stop(), 0)

        # At the restart the WAL goes into a table file and the block cache starts empty, but
        # the OS page cache still holds the file just written: read on the loop all the same.
        again = self.start_l2(data_dir=l2.data_dir, name="again")
        c = self.l2_client(again)
        before = paths(c)
        self.assertEqual(c.get(b"k1234"), b"v234")
        d = delta(before, paths(c))
        self.assertEqual(d.get("l2_inline_reads"), 1, d)
        self.assertGreaterEqual(d.get("l2_loop_page_cache_reads", 0), 1, d)

        # With the file's pages dropped from the page cache the read needs the device: a worker.
        if filesystem_of(os.path.realpath(again.data_dir)) in ("tmpfs", "ramfs"):
            raise unittest.SkipTest("the data dir is in RAM: no read there ever waits for a device")
        # The kernel may keep a page the drop asked it to forget (one under I/O, say): a key whose
        # read did not need the device is not what this checks, so up to five keys are tried.
        def first_read_needs_the_disk(read_one, keys):
            for key in keys:
                drop_from_page_cache(again.data_dir)
                before = paths(c)
                read_one(key)
                after = paths(c)
                d = delta(before, after)
                if d.get("l2_inline_reads") is None:
                    self.assertEqual({k: d.get(k) for k in ("l2_offloaded_reads", "l2_inline_fallbacks")},
                                     {"l2_offloaded_reads": 1, "l2_inline_fallbacks": 1}, f"on disk only: {d}")
                    self.assertGreaterEqual(d.get("l2_loop_would_block", 0), 1, d)
                    read_one(key)
                    d = delta(after, paths(c))
                    self.assertEqual((d.get("l2_inline_reads"), d.get("l2_loop_page_cache_reads")), (1, None),
                                     f"its block is in the block cache now: {d}")
                    return key
            self.fail(f"none of {keys} needed the disk after its pages were dropped")

        def get(key):
            self.assertEqual(c.get(key), b"v" + key[-3:])

        first_read_needs_the_disk(get, [b"k2345", b"k2567", b"k2789", b"k2901", b"k4123"])

        # GetE, rend's L1-miss read, the same way.
        b = self.l2_client(again)

        def gete(key):
            b.send(binary_request(GETE, key, opaque=7))
            r = read_binary_response(b)
            self.assertEqual((r["opcode"], r["status"], r["opaque"], r["value"]), (GETE, 0, 7, b"v" + key[-3:]))

        first_read_needs_the_disk(gete, [b"k3333", b"k3555", b"k3777", b"k3999", b"k4444"])

    def test_replies_keep_order_when_an_inline_read_follows_an_offloaded_write(self):
        l2 = self.start_l2()
        c = self.l2_client(l2, unix=True, timeout=30)
        big = b"B" * (80 * 1024)  # more than the loop ever writes itself
        before = paths(c)
        self.assertEqual(c.set(b"k", big), b"STORED\r\n")
        self.assertEqual(c.get(b"k"), big)
        self.assertEqual(delta(before, paths(c)),
                         {"l2_inline_fallbacks": 1, "l2_offloaded_writes": 1, "l2_inline_reads": 1})

        # Pipelined: big writes (a worker), small ones and read-modify-writes (the loop when the
        # stripes are free), reads of what was just written, each sent on its own so batches of
        # every shape form, and reads often arrive while the write before them is on a worker.
        self.assertEqual(c.set(b"ctr", b"0"), b"STORED\r\n")
        before = paths(c)
        rounds = []
        for i in range(400):
            key = b"p%d" % i
            value = (b"<%d>" % i) * (20000 if i % 4 == 0 else 1)
            n = b"%d" % (i + 1)
            item = b"VALUE %s 0 %d\r\n%s\r\n" % (key, len(value), value)
            rounds.append(([b"set %s 0 0 %d\r\n%s\r\n" % (key, len(value), value), b"get %s\r\n" % key,
                            b"incr ctr 1\r\n", b"get ctr %s\r\n" % key],
                           [b"STORED\r\n", item + b"END\r\n", n + b"\r\n",
                            b"VALUE ctr 0 %d\r\n%s\r\n%sEND\r\n" % (len(n), n, item)]))
        # Replies are read while requests go out: the server stops reading from a client that
        # leaves too many replies unread.
        mismatches = []

        def read_all():
            try:
                for i, (_, wants) in enumerate(rounds):
                    for want in wants:
                        got = c.read_exact(len(want))
                        if got != want:
                            mismatches.append((i, want[:60], got[:60]))
                            return
            except Exception as e:  # reported below
                mismatches.append(repr(e))

        reader = threading.Thread(target=read_all, daemon=True)
        reader.start()
        for sends, _ in rounds:
            for data in sends:
                c.send(data)
        reader.join(60)
        self.assertFalse(reader.is_alive(), "all replies arrived")
        self.assertEqual(mismatches, [])
        self.assertEqual(c.read_available(0.2), b"", "nothing more")
        d = delta(before, paths(c))
        print(f"paths taken: {d}")
        self.assertEqual(d.get("l2_inline_reads", 0) + d.get("l2_offloaded_reads", 0), 800)
        self.assertEqual(d.get("l2_inline_writes", 0) + d.get("l2_offloaded_writes", 0), 800)
        self.assertGreaterEqual(d.get("l2_offloaded_writes", 0), 100, "the big sets")
        self.assertGreater(d.get("l2_inline_reads", 0), 0)
        # (A write slower than 1 ms, on a loaded machine, pauses inline writes for 50 ms.)
        self.assertTrue(d.get("l2_inline_writes", 0) > 0 or int(c.stats()["l2_inline_write_pauses"]) > 0, d)

    def test_inline_off_sends_everything_to_the_workers(self):
        l2 = self.start_l2(extra_args=["--inline", "off"])
        c = self.l2_client(l2)
        self.assertEqual(c.set(b"a", b"1"), b"STORED\r\n")
        self.assertEqual(c.get(b"a"), b"1")
        self.assertEqual(delta({n: 0 for n in PATHS}, paths(c)), {"l2_offloaded_reads": 1, "l2_offloaded_writes": 1})

    def test_inline_reads_only_leaves_writes_to_the_workers(self):
        l2 = self.start_l2(extra_args=["--inline", "reads"])
        c = self.l2_client(l2)
        self.assertEqual(c.set(b"a", b"1"), b"STORED\r\n")
        self.assertEqual(c.call(b"incr a 1\r\n"), b"2\r\n")
        self.assertEqual(c.get(b"a"), b"2")
        self.assertEqual(delta({n: 0 for n in PATHS}, paths(c)), {"l2_inline_reads": 1, "l2_offloaded_writes": 2})
