"""The meta corpus against l1only with chunked L1 (480-byte items): memcached cannot see values
stored as heads and chunks, so the worker executes every meta command itself with rend-l2's rules
and keeps the marks in the head (worker/chunked_meta.cc).

Not compared, by design (docs/compatibility.md): me's `cls` and `size`, and the "hit before" mark
(mg h, me fetch), which chunked L1 does not keep: writing it would give the head a new CAS on every
value's first read, where memcached keeps the CAS."""
import test_conformance_meta as meta
import test_conformance_meta_tiered as tiered


class ChunkedL1OnlyMetaConformanceTest(meta.MetaConformanceTest):
    NOT_COMPARED = {
        name: "chunked L1 does not keep the hit-before mark"
        for name in ("meta_mg_c_matches_gets", "mg_h_and_l_and_u", "binary_key_plain_fetch", "me_with_ttl_and_fetch",
                     "me_fetch_and_u", "mg_N_with_flags", "mg_N_without_v", "me_vivified", "cas_zero_does_not_fetch")
    }

    def setUp(self):
        super(meta.base.ConformanceTest, self).setUp()
        self.direct = self.start_memcached()
        self.rend = self.start_rend(workers=2, config={"l1": {"chunked": True, "chunk_size": 480}})
        self.pids = self.rend.worker_pids()

    def test_meta_protocol(self):
        self.run_meta_corpus("mlc", tiered.normalize_tiered)


if __name__ == "__main__":
    import unittest
    unittest.main()
