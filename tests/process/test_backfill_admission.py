"""l2.backfill_admission against a real memcached and rend-l2: with "frequency", once L1 has
evicted, a key read once from L2 is served but not copied into L1 (checked on memcached itself),
and copied at its second read; while L1 has room every read is copied; with "all" the first read
is copied whatever L1's state. The counter of refused backfills moves with them."""
import os
import time

from rendtest import Client, ProcessTest, free_port, metric, wait_until

VALUE = b"v" * 50000


class BackfillAdmissionTest(ProcessTest):
    def start_stack(self, admission):
        self.batch_port = free_port()
        rend = self.start_rend(workers=1, memory_mb=8, config={
            "l2": {"enabled": True, "data_dir": os.path.join(self.tmp, "l2"),
                   "address": os.path.join(self.tmp, "run", "rend-l2.sock"),
                   "backfill_admission": admission, "admission_width": 1024},
            "listen": {"batch_port": self.batch_port},
        })
        self.main = self.client(rend.port)
        self.batch = self.client(self.batch_port)
        self.l1 = Client(path=os.path.join(self.tmp, "run", "memcached.sock"))
        self.addCleanup(self.l1.close)
        return rend

    def l1_holds(self, key):
        return self.l1.call(b"get " + key + b"\r\n").startswith(b"VALUE ")

    def l2_only(self, key, value=b"from-l2"):
        """Stores `key` through the batch port: in L2, not in L1."""
        self.assertEqual(self.batch.set(key, value), b"STORED\r\n")
        self.assertFalse(self.l1_holds(key))

    def mg(self, key):
        """An mg asking only for the value (answered from an L1 copy when there is one)."""
        self.main.send(b"mg " + key + b" v\r\n")
        line = self.main.read_line()
        self.assertTrue(line.startswith(b"VA "), line)
        return self.main.read_exact(int(line.split()[1]) + 2)[:-2]

    def counters(self):
        s = self.main.stats()
        return int(s["backfills"]), int(s["backfills_skipped"])

    def expect_counters(self, backfills, skipped):
        """The client has its value before the backfill's add is answered: wait for the count."""
        wait_until(lambda: self.counters() == (backfills, skipped), 5,
                   what=f"backfills {backfills}, skipped {skipped} (now {self.counters()})")

    def fill_l1_past_capacity(self):
        """memcached -m 8 takes 20 MB of values straight: it evicts."""
        for i in range(400):
            self.l1.send(b"set filler-%d 0 0 %d noreply\r\n%s\r\n" % (i, len(VALUE), VALUE))
        self.assertTrue(self.l1.call(b"version\r\n").startswith(b"VERSION"))
        evictions = int(self.l1.stats()["evictions"])
        self.assertGreater(evictions, 0)

    def wait_for_full_l1(self):
        """Until the worker has read the evictions (it polls about once a second): a fresh key's
        first read is then refused."""
        probe = [0]

        def refused():
            probe[0] += 1
            key = b"probe-%d" % probe[0]
            self.l2_only(key)
            skipped = self.counters()[1]
            self.assertEqual(self.main.get(key), b"from-l2")
            time.sleep(0.05)  # a refusal is counted after the reply, an add's outcome too
            return self.counters()[1] == skipped + 1
        wait_until(refused, 10, interval=0.2, what="the worker seeing L1's evictions")

    def test_frequency_copies_a_key_at_its_second_read_once_l1_evicts(self):
        self.start_stack("frequency")
        # L1 has room (memcached never evicted): the first read is copied.
        self.l2_only(b"roomy")
        self.assertEqual(self.main.get(b"roomy"), b"from-l2")
        self.expect_counters(1, 0)
        self.assertTrue(self.l1_holds(b"roomy"), "copied while L1 has room")

        self.fill_l1_past_capacity()
        self.wait_for_full_l1()
        self.l2_only(b"cold")
        backfills, skipped = self.counters()
        self.assertEqual(self.main.get(b"cold"), b"from-l2")
        self.expect_counters(backfills, skipped + 1)
        self.assertFalse(self.l1_holds(b"cold"), "a key read once is not copied into a full L1")
        self.assertEqual(self.main.get(b"cold"), b"from-l2")
        self.expect_counters(backfills + 1, skipped + 1)
        self.assertTrue(self.l1_holds(b"cold"), "read twice, it is copied")
        self.assertEqual(self.main.get(b"cold"), b"from-l2")  # now an L1 hit
        self.expect_counters(backfills + 1, skipped + 1)

        # mg (answered from a copy) follows the same admission.
        self.l2_only(b"meta-cold")
        self.assertEqual(self.mg(b"meta-cold"), b"from-l2")
        self.expect_counters(backfills + 1, skipped + 2)
        self.assertFalse(self.l1_holds(b"meta-cold"))
        self.assertEqual(self.mg(b"meta-cold"), b"from-l2")
        self.expect_counters(backfills + 2, skipped + 2)
        self.assertTrue(self.l1_holds(b"meta-cold"))

        # The batch port's reads do not count as misses of the main port's.
        self.l2_only(b"batch-read")
        self.assertEqual(self.batch.get(b"batch-read"), b"from-l2")
        self.assertEqual(self.main.get(b"batch-read"), b"from-l2")
        self.expect_counters(backfills + 2, skipped + 3)
        self.assertFalse(self.l1_holds(b"batch-read"))

    def test_all_copies_at_the_first_read_into_a_full_l1(self):
        rend = self.start_stack("all")
        self.fill_l1_past_capacity()
        self.l2_only(b"cold")
        backfills, _ = self.counters()
        self.assertEqual(self.main.get(b"cold"), b"from-l2")
        self.expect_counters(backfills + 1, 0)
        self.assertTrue(self.l1_holds(b"cold"), "copied at its first read")
        scrape = rend.scrape()
        self.assertIn('rend_backfills_skipped_total{worker="0"} 0', scrape)
        self.assertEqual(metric(scrape, "rend_backfills_total", worker="0"), backfills + 1)
