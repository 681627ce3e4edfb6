"""The differential corpus of test_conformance against the default tiered stack: two workers with
their default connection counts, memcached as L1 and rend-l2 as L2, both supervised by rend. Every
case must come back byte for byte as from memcached 1.6.18 itself (CAS values and the version
aside, as in the plain run) on the main port (l1l2), and in test_conformance_batch on the batch
port (l1l2batch): the tiers change where an item lives, never what a client is told.
"""
import test_conformance as base
from rendtest import free_port


class TieredConformanceTest(base.ConformanceTest):
    """The main port (l1l2); test_conformance_batch runs the batch port, in parallel under ctest."""
    PORT = "main"

    def setUp(self):
        super(base.ConformanceTest, self).setUp()
        self.direct = self.start_memcached()
        self.rend = self.start_rend(workers=2, config={
            "l2": {"enabled": True, "data_dir": self.tmp + "/l2", "address": self.tmp + "/run/rend-l2.sock"},
            "listen": {"batch_port": free_port()},
        })
        self.pids = self.rend.worker_pids()
        if self.PORT == "batch":
            self.rend.port = self.rend.config["listen"]["batch_port"]

    def test_text_protocol(self):
        self.run_corpus(f"t{self.PORT}_", base.text_cases())

    def test_binary_protocol(self):
        self.run_corpus(f"b{self.PORT}_", base.binary_cases())

    def test_other_memcached_text_commands(self):
        self.run_corpus(f"m{self.PORT}_", base.other_text_cases())



if __name__ == "__main__":
    import unittest
    unittest.main()
