"""memcached's own conformance tool, memccapable, against rend in front of a real memcached."""
import os
import re
import subprocess

from rendtest import ProcessTest, free_port


class MemccapableTest(ProcessTest):
    def run_memccapable(self, port):
        out = subprocess.run(["memccapable", "-h", "127.0.0.1", "-p", str(port), "-t", "5"],
                             capture_output=True, text=True, timeout=120)
        text = out.stdout + out.stderr
        print(text)
        return text

    def assert_all_pass(self, text):
        passed = len(re.findall(r"\[pass\]", text))
        failed = re.findall(r"^(.*)\[FAIL\]", text, re.M)
        self.assertEqual(failed, [], "memccapable failures")
        self.assertEqual(passed, 54, "memccapable runs 54 tests")
        self.assertIn("All tests passed", text)

    def test_l1only_supervised_memcached(self):
        rend = self.start_rend(workers=2)
        self.assert_all_pass(self.run_memccapable(rend.port))

    def test_l1only_external_memcached_over_tcp(self):
        mc = self.start_memcached()
        rend = self.start_rend(workers=1, l1_address=mc.address, config={"l1": {"connections": 3}})
        self.assert_all_pass(self.run_memccapable(rend.port))

    def test_l1l2_main_and_batch_ports(self):
        batch = free_port()
        rend = self.start_rend(workers=2, config={
            "l2": {"enabled": True, "data_dir": os.path.join(self.tmp, "l2"),
                   "address": os.path.join(self.tmp, "run", "rend-l2.sock")},
            "listen": {"batch_port": batch},
        })
        self.assert_all_pass(self.run_memccapable(rend.port))
        self.assert_all_pass(self.run_memccapable(batch))

    def test_chunked_l1only(self):
        # Small items, so even memccapable's values span a head and several chunks.
        rend = self.start_rend(workers=2, config={"l1": {"chunked": True, "chunk_size": 384}})
        self.assert_all_pass(self.run_memccapable(rend.port))

    def test_chunked_l1l2_main_and_batch_ports(self):
        batch = free_port()
        rend = self.start_rend(workers=2, config={
            "l1": {"chunked": True, "chunk_size": 480},
            "l2": {"enabled": True, "data_dir": os.path.join(self.tmp, "l2"),
                   "address": os.path.join(self.tmp, "run", "rend-l2.sock")},
            "listen": {"batch_port": batch},
        })
        self.assert_all_pass(self.run_memccapable(rend.port))
        self.assert_all_pass(self.run_memccapable(batch))
