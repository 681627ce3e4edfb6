"""Capacity beyond RAM: rend with a 64 MiB memcached and rend-l2 holds 1 GiB of distinct values,
every one read back byte-exact through rend; rend supervising rend-l2 restarts it after kill -9."""
import hashlib
import os
import signal
import socket
import threading
import time

from rendtest import Client, ProcessTest, wait_until

VALUE_SIZE = 10 * 1024
TOTAL = 1 << 30


def value_for(i):
    seed = hashlib.sha256(b"%d" % i).digest()
    return (seed * (VALUE_SIZE // len(seed) + 1))[:VALUE_SIZE]


class CapacityTest(ProcessTest):
    def test_one_gib_through_64_mib_of_ram(self):
        rend = self.start_rend(workers=2, memory_mb=64, config={
            "l2": {"enabled": True, "data_dir": os.path.join(self.tmp, "l2"), "max_bytes": 4 << 30,
                   "address": os.path.join(self.tmp, "run", "rend-l2.sock")},
            "listen": {"batch_port": 0},
        })
        count = TOTAL // VALUE_SIZE
        clients = 4
        errors = []

        def writer(n):
            c = Client(rend.port, timeout=60)
            batch = 64
            for start in range(n, count, clients * batch):
                ids = range(start, min(start + clients * batch, count), clients)
                c.send(b"".join(b"set cap-%d 0 0 %d noreply\r\n%s\r\n" % (i, VALUE_SIZE, value_for(i)) for i in ids))
                # A version round trip paces the writer and proves the noreply sets were consumed.
                if c.call(b"version\r\n")[:7] != b"VERSION":
                    errors.append("writer lost sync")
                    return
            c.close()

        started = time.monotonic()
        threads = [threading.Thread(target=writer, args=(n,)) for n in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(600)
        write_s = time.monotonic() - started
        self.assertEqual(errors, [])

        started = time.monotonic()
        c = self.client(rend.port, timeout=60)
        missing = wrong = 0
        batch = 100
        for start in range(0, count, batch):
            ids = list(range(start, min(start + batch, count)))
            c.send(b"get " + b" ".join(b"cap-%d" % i for i in ids) + b"\r\n")
            got = {}
            while True:
                line = c.read_line()
                if line == b"END\r\n":
                    break
                _, key, _, n = line.split()
                got[int(key[4:])] = c.read_exact(int(n) + 2)[:-2]
            for i in ids:
                if i not in got:
                    missing += 1
                elif got[i] != value_for(i):
                    wrong += 1
        read_s = time.monotonic() - started
        stats = c.stats()
        print(f"wrote {count} x {VALUE_SIZE} B in {write_s:.1f}s, read back in {read_s:.1f}s; "
              f"backfills {stats.get('backfills')}, missing {missing}, wrong {wrong}")
        self.assertEqual((missing, wrong), (0, 0))
        self.assertGreater(int(stats["backfills"]), count // 2, "most reads came from L2")

    def test_supervised_rend_l2_is_restarted_and_keeps_acknowledged_writes(self):
        rend = self.start_rend(workers=1, config={
            "l2": {"enabled": True, "data_dir": os.path.join(self.tmp, "l2"),
                   "address": os.path.join(self.tmp, "run", "rend-l2.sock")},
            "listen": {"batch_port": 0},
        })
        c = self.client(rend.port)
        for i in range(200):
            self.assertEqual(c.set(b"d%d" % i, b"value-%d" % i), b"STORED\r\n")
        l2_pid = [p for p, cmd in rend.children().items() if cmd[0].endswith(b"rend-l2")][0]
        os.kill(l2_pid, signal.SIGKILL)
        wait_until(lambda: any(cmd[0].endswith(b"rend-l2") and p != l2_pid for p, cmd in rend.children().items()), 10,
                   what="rend-l2 restarted")
        # Empty L1 so every read goes to the restarted L2.
        wait_until(lambda: c.set(b"probe", b"x") == b"STORED\r\n", 10, what="writes accepted again")
        l1 = Client(path=os.path.join(self.tmp, "run", "memcached.sock"))
        self.addCleanup(l1.close)
        self.assertEqual(l1.call(b"flush_all\r\n"), b"OK\r\n")
        for i in range(200):
            self.assertEqual(c.get(b"d%d" % i), b"value-%d" % i)
