"""A damaged L2 store at start (a garbled CURRENT file, a truncated table file) never leaves
rend-l2 in a crash loop: as a cache it moves the store aside, starts empty, logs it and counts it."""
import glob
import os

from rendtest import ProcessTest, metric, wait_until


class DamagedStoreTest(ProcessTest):
    def config(self, wal=True):
        self.data = os.path.join(self.tmp, "l2")
        return {"l2": {"enabled": True, "data_dir": self.data, "wal": wal,
                       "address": os.path.join(self.tmp, "run", "rend-l2.sock")},
                "listen": {"batch_port": 0}}

    def fill_and_stop(self, cfg):
        rend = self.start_rend(workers=1, config=cfg)
        c = self.client(rend.port)
        for i in range(200):
            self.assertEqual(c.set(b"k%d" % i, b"v" * 100), b"STORED\r\n")
        c.close()
        rend.stop()

    def assert_starts_empty_and_serves(self, cfg):
        rend = self.start_rend(workers=1, config=cfg)
        c = self.client(rend.port)
        self.assertEqual(c.set(b"fresh", b"value"), b"STORED\r\n")
        self.assertEqual(c.get(b"fresh"), b"value")
        self.assertIsNone(c.get(b"k1"), "the store started empty")
        self.assertTrue(os.path.isdir(self.data + ".damaged"), "the damaged store is kept aside")
        self.assertIn("moved to", rend.read_log())
        wait_until(lambda: metric(rend.scrape(), "rend_l2_damaged_stores_total") == 1, 10, what="the count")
        self.assertEqual(rend.rendctl("--json", "status").returncode, 0)
        self.assertNotIn("crash-looping", rend.read_log())

    def test_a_garbled_current_file(self):
        cfg = self.config()
        self.fill_and_stop(cfg)
        with open(os.path.join(self.data, "CURRENT"), "w") as f:
            f.write("not a manifest name")
        self.assert_starts_empty_and_serves(cfg)

    def test_a_truncated_table_file(self):
        cfg = self.config(wal=False)  # without a WAL, a clean stop writes the data into table files
        self.fill_and_stop(cfg)
        tables = glob.glob(os.path.join(self.data, "*.sst"))
        self.assertTrue(tables, "a table file to damage")
        with open(tables[0], "r+b") as f:
            f.truncate(os.path.getsize(tables[0]) // 2)
        self.assert_starts_empty_and_serves(cfg)
