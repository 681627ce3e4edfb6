"""A full or read-only disk under rend-l2: writes fail with SERVER_ERROR and are counted, reads
keep being served, nothing crashes, and writes succeed again by themselves once space returns.

The disks are real and small: a 64 MiB tmpfs, and an ext4 image that goes read-only the way ext4
does after an error (errors=remount-ro). Mounting needs root; the tests say so and skip without it.
"""
import os
import re
import shutil
import signal
import subprocess
import unittest

from rendtest import Client, ProcessTest, metric, unix_accepts, wait_until

WRITE_FAILED = b"SERVER_ERROR backend error\r\n"


def value_for(i):
    # Incompressible, so the disk fills at the rate the test writes.
    return os.urandom(400).hex().encode() + b"-%d" % i


def fill(path, leave=0):
    """Fills the file system of `path` with one file until `leave` bytes are free (or it is full)."""
    st = os.statvfs(os.path.dirname(path))
    todo = max(0, st.f_bavail * st.f_frsize - leave)
    block = os.urandom(1 << 20)
    with open(path, "wb") as f:
        try:
            while todo > 0:
                todo -= f.write(block[:min(todo, len(block))])
                f.flush()
        except OSError:
            pass  # full


@unittest.skipUnless(os.geteuid() == 0, "mounting a small file system needs root")
class SmallDiskTest(ProcessTest):
    """rend on a file system of its own; helpers only."""

    def mount_tmpfs(self, size_mb=64):
        mnt = os.path.join(self.tmp, "disk")
        os.makedirs(mnt)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", mnt], check=True)
        self.addCleanup(subprocess.run, ["umount", "-l", mnt])
        return mnt

    def start_on(self, mnt, workers=2):
        self.l2_socket = os.path.join(self.tmp, "run", "rend-l2.sock")
        cfg = {"l2": {"enabled": True, "data_dir": os.path.join(mnt, "l2"), "max_bytes": 1 << 30,
                      "address": self.l2_socket},
               "listen": {"batch_port": 0}}
        return self.start_rend(workers=workers, config=cfg)

    def start_with_values(self, mnt, count=300):
        rend = self.start_on(mnt)
        c = self.client(rend.port)
        stored = {b"k%d" % i: value_for(i) for i in range(count)}
        for key, value in stored.items():
            self.assertEqual(c.set(key, value), b"STORED\r\n")
        return rend, c, stored

    def l2_client(self):
        """Straight to rend-l2: its answers, not L1's copies."""
        c = Client(path=self.l2_socket, timeout=10)
        self.addCleanup(c.close)
        return c

    def write_until_refused(self, c, prefix, limit=20000):
        stored = {}
        for i in range(limit):
            key, value = b"%s%d" % (prefix, i), value_for(i)
            reply = c.set(key, value)
            if reply == WRITE_FAILED:
                return stored
            self.assertEqual(reply, b"STORED\r\n", key)
            stored[key] = value
        self.fail(f"{limit} writes and the disk never filled")

    def assert_l2_holds(self, stored):
        c = self.l2_client()
        for key, value in stored.items():
            self.assertEqual(c.get(key), value, key)

    def assert_alive(self, rend, l2_pid):
        self.assertEqual(rend.l2_pid(), l2_pid, "rend-l2 kept running")
        self.assertIsNone(re.search(r"exited \(signal (6|11)\)", rend.read_log()), "no abort, no crash")


class FullDiskTest(SmallDiskTest):
    def test_a_disk_that_fills_while_serving(self):
        mnt = self.mount_tmpfs()
        rend = self.start_on(mnt)
        c = self.client(rend.port)
        l2_pid = rend.l2_pid()
        filler = os.path.join(mnt, "filler")
        fill(filler, leave=2 << 20)
        stored = self.write_until_refused(c, b"a")
        # Every write now fails (the few that follow too), and is counted.
        for i in range(20):
            self.assertEqual(c.set(b"refused%d" % i, b"x"), WRITE_FAILED)
        self.assertEqual(c.call(b"delete a1\r\n"), WRITE_FAILED)
        self.assert_l2_holds(stored)  # reads are served: every acknowledged write, from L2 itself
        wait_until(lambda: metric(rend.scrape(), "rend_l2_store_writable") == 0, 10, what="writable 0")
        wait_until(lambda: metric(rend.scrape(), "rend_l2_store_write_errors_total") >= 21, 10, what="the count")
        self.assertGreaterEqual(metric(rend.scrape(), "rend_l2_store_write_stops_total"), 1)
        self.assertIn("L2 writes stopped", rend.read_log())
        self.assert_alive(rend, l2_pid)

        os.unlink(filler)  # space returns: writes succeed again, with no restart
        wait_until(lambda: c.set(b"after", b"space returned") == b"STORED\r\n", 30, interval=0.5,
                   what="a write once space returned")
        self.assertEqual(c.get(b"after"), b"space returned")
        wait_until(lambda: metric(rend.scrape(), "rend_l2_store_writable") == 1, 10, what="writable 1")
        self.assert_l2_holds(stored)
        self.assert_alive(rend, l2_pid)

    def test_a_disk_full_at_start(self):
        mnt = self.mount_tmpfs()
        rend, c, stored = self.start_with_values(mnt)
        filler = os.path.join(mnt, "filler")
        fill(filler)
        # rend-l2 dies with the disk full (here: killed) and is started again: it cannot open its
        # store for writing (RocksDB replays its WAL into a new table file), so it serves it
        # read-only instead of failing in a loop.
        os.kill(rend.l2_pid(), signal.SIGKILL)
        wait_until(lambda: "store opened read-only" in rend.read_log(), 30, what="a read-only open")
        wait_until(lambda: unix_accepts(self.l2_socket), 30, what="rend-l2 serving")
        l2_pid = rend.l2_pid()
        self.assert_l2_holds(stored)
        l2 = self.l2_client()
        self.assertEqual(l2.set(b"new", b"v"), b"SERVER_ERROR write error\r\n")
        # (once the workers have reconnected to the new rend-l2)
        wait_until(lambda: c.set(b"new", b"v") == WRITE_FAILED, 10, what="a write refused")
        wait_until(lambda: metric(rend.scrape(), "rend_l2_store_writable") == 0, 10, what="writable 0")
        wait_until(lambda: metric(rend.scrape(), "rend_l2_store_write_errors_total") >= 2, 10, what="the count")

        os.unlink(filler)
        wait_until(lambda: c.set(b"new", b"v") == b"STORED\r\n", 30, interval=0.5, what="a write once space returned")
        self.assertIn("reopened for writing", rend.read_log())
        self.assert_l2_holds(stored)
        self.assertEqual(l2.get(b"new"), b"v")
        self.assert_alive(rend, l2_pid)
        self.assertNotIn("crash-looping", rend.read_log())


class ReadOnlyDiskTest(SmallDiskTest):
    """ext4 with errors=remount-ro: after an error it refuses every write with EROFS."""

    def mount_ext4(self):
        if not shutil.which("mkfs.ext4"):
            self.skipTest("mkfs.ext4 is not installed")
        image = os.path.join(self.tmp, "disk.img")
        with open(image, "wb") as f:
            f.truncate(128 << 20)
        subprocess.run(["mkfs.ext4", "-q", "-F", image], check=True)
        mnt = os.path.join(self.tmp, "disk")
        os.makedirs(mnt)
        mounted = subprocess.run(["mount", "-o", "loop,errors=remount-ro", image, mnt], capture_output=True)
        if mounted.returncode != 0:
            self.skipTest(f"cannot mount a loop device here: {mounted.stderr.decode().strip()}")
        self.addCleanup(subprocess.run, ["umount", "-l", mnt])
        device = os.path.basename(subprocess.run(["findmnt", "-n", "-o", "SOURCE", mnt], capture_output=True,
                                                 text=True).stdout.strip())
        self.trigger = f"/sys/fs/ext4/{device}/trigger_fs_error"
        if not os.path.exists(self.trigger):
            self.skipTest(f"{self.trigger} is missing: cannot make ext4 fail")
        return mnt

    def test_a_disk_that_goes_read_only(self):
        mnt = self.mount_ext4()
        rend, c, stored = self.start_with_values(mnt)
        l2_pid = rend.l2_pid()
        with open(self.trigger, "w") as f:
            f.write("1")  # what ext4 does on a metadata error: no more writes, from anyone
        for i in range(20):
            self.assertEqual(c.set(b"refused%d" % i, b"x"), WRITE_FAILED)
        self.assert_l2_holds(stored)
        wait_until(lambda: metric(rend.scrape(), "rend_l2_store_writable") == 0, 10, what="writable 0")
        wait_until(lambda: metric(rend.scrape(), "rend_l2_store_write_errors_total") >= 20, 10, what="the count")
        self.assert_alive(rend, l2_pid)

        # Started again on the read-only disk, rend-l2 serves its store read-only, and stays up.
        os.kill(l2_pid, signal.SIGKILL)
        wait_until(lambda: "store opened read-only" in rend.read_log(), 30, what="a read-only open")
        wait_until(lambda: unix_accepts(self.l2_socket), 30, what="rend-l2 serving again")
        l2_pid = rend.l2_pid()
        wait_until(lambda: c.get(b"k1") == stored[b"k1"], 10, what="a read")
        self.assert_l2_holds(stored)
        # (once the workers have reconnected to the new rend-l2)
        wait_until(lambda: c.set(b"new", b"v") == WRITE_FAILED, 10, what="a write refused")
        self.assert_alive(rend, l2_pid)
        self.assertNotIn("crash-looping", rend.read_log())
