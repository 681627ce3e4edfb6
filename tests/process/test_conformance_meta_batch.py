"""The meta corpus against the tiered stack's batch port (l1l2batch): writes only refresh copies L1
holds and reads never backfill; the answers are memcached's all the same."""
import test_conformance_meta_tiered as tiered


class BatchMetaConformanceTest(tiered.TieredMetaConformanceTest):
    PORT = "batch"


if __name__ == "__main__":
    import unittest
    unittest.main()
