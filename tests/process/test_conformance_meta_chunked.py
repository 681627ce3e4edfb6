"""The meta corpus against the tiered stack with chunked L1 (480-byte items): L1's copies of
unmarked items are stored as heads and chunks, and every answer is still memcached's."""
import test_conformance_meta_tiered as tiered
from rendtest import free_port


class ChunkedTieredMetaConformanceTest(tiered.TieredMetaConformanceTest):
    PORT = "main"

    def setUp(self):
        super(tiered.meta.base.ConformanceTest, self).setUp()
        self.direct = self.start_memcached()
        self.rend = self.start_rend(workers=2, config={
            "l2": {"enabled": True, "data_dir": self.tmp + "/l2", "address": self.tmp + "/run/rend-l2.sock"},
            "l1": {"chunked": True, "chunk_size": 480},
            "listen": {"batch_port": free_port()},
        })
        self.pids = self.rend.worker_pids()

    def test_meta_protocol(self):
        self.run_meta_corpus("mchunked_", tiered.normalize_tiered)


if __name__ == "__main__":
    import unittest
    unittest.main()
