"""The differential corpus against the default tiered stack's batch port (l1l2batch): writes that
only refresh keys L1 holds and reads that do not backfill still answer byte for byte as memcached
does. The stack and the compared cases are test_conformance_tiered's."""
import test_conformance_tiered as tiered

class BatchConformanceTest(tiered.TieredConformanceTest):
    PORT = "batch"

if __name__ == "__main__":
    import unittest
    unittest.main()
