"""memcached's own conformance tool, memccapable, against rend-l2 directly (TCP debug port)."""
import re
import subprocess

from test_l2_lifecycle import L2ProcessTest


class L2MemccapableTest(L2ProcessTest):
    def test_all_54_pass(self):
        l2 = self.start_l2()
        out = subprocess.run(["memccapable", "-h", "127.0.0.1", "-p", str(l2.port), "-t", "5"],
                             capture_output=True, text=True, timeout=120)
        text = out.stdout + out.stderr
        print(text)
        self.assertEqual(re.findall(r"^(.*)\[FAIL\]", text, re.M), [], "memccapable failures")
        self.assertEqual(len(re.findall(r"\[pass\]", text)), 54, "memccapable runs 54 tests")
        self.assertIn("All tests passed", text)
        # It really ran against rend-l2: the store saw its traffic.
        c = self.l2_client(l2)
        self.assertGreater(int(c.stats()["cmd_set"]), 50)
