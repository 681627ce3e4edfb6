"""kill -9 during a write load: every write rend-l2 acknowledged is there after a restart.

The WAL is written (not fsynced) before a batch is acknowledged, so a process kill loses nothing:
the data is in the kernel's page cache. Writers pipeline sets on several connections and record
exactly which ones were answered STORED before the kill.
"""
import hashlib
import os
import random
import signal
import socket
import threading
import time

from rendtest import Client
from test_l2_lifecycle import L2ProcessTest


def value_for(writer, i):
    # Distinct, length-varying, checkable: a wrong or torn value cannot pass for the right one.
    seed = hashlib.sha256(b"%d-%d" % (writer, i)).digest()
    return (seed.hex().encode() * 40)[: 20 + (seed[0] * 7) % 1500]


class L2DurabilityTest(L2ProcessTest):
    def test_kill_9_loses_no_acknowledged_write(self):
        l2 = self.start_l2(threads=2)
        acked = [[] for _ in range(4)]
        stop = threading.Event()

        def writer(n, binary_noreply_mix):
            c = Client(path=l2.socket, timeout=10)
            i = 0
            try:
                while not stop.is_set():
                    batch = list(range(i, i + 50))
                    c.send(b"".join(b"set dur-%d-%d %d 0 %d\r\n%s\r\n" % (n, k, k % 1000, len(value_for(n, k)),
                                                                          value_for(n, k)) for k in batch))
                    for k in batch:
                        line = c.read_line()
                        if line != b"STORED\r\n":
                            raise AssertionError(line)
                        acked[n].append(k)  # only now is the write acknowledged
                    i += 50
            except (ConnectionError, OSError, socket.timeout):
                pass  # the server died mid-batch: those writes were never acknowledged
            finally:
                c.close()

        threads = [threading.Thread(target=writer, args=(n, n % 2), daemon=True) for n in range(4)]
        for t in threads:
            t.start()
        time.sleep(random.uniform(1.5, 2.5))
        os.kill(l2.proc.pid, signal.SIGKILL)
        l2.proc.wait(10)
        stop.set()
        for t in threads:
            t.join(20)
            self.assertFalse(t.is_alive())
        total = sum(len(a) for a in acked)
        print(f"acknowledged before kill -9: {total} sets ({[len(a) for a in acked]})")
        self.assertGreater(total, 1000, "the load was running when the process was killed")

        again = self.start_l2(data_dir=l2.data_dir, name="after-kill")
        c = self.l2_client(again, unix=True, timeout=30)
        missing = []
        for n, keys in enumerate(acked):
            for start in range(0, len(keys), 200):
                chunk = keys[start:start + 200]
                c.send(b"get " + b" ".join(b"dur-%d-%d" % (n, k) for k in chunk) + b"\r\n")
                reply = c.read_until(b"END\r\n")
                expected = b"".join(b"VALUE dur-%d-%d %d %d\r\n%s\r\n" % (n, k, k % 1000, len(value_for(n, k)),
                                                                          value_for(n, k)) for k in chunk) + b"END\r\n"
                if reply != expected:
                    for k in chunk:
                        v = c.get(b"dur-%d-%d" % (n, k))
                        if v != value_for(n, k):
                            missing.append((n, k))
        print(f"read back after restart: {total - len(missing)} of {total}")
        self.assertEqual(missing[:20], [], f"{len(missing)} acknowledged writes lost or wrong")
