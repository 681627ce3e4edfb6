"""The meta corpus (test_conformance_meta) against the default tiered stack: rend-l2 executes every
meta command and keeps the marks (stale, win token, hit before, last access), L1 holds copies of
unmarked items. The main port (l1l2) here; test_conformance_meta_batch runs the batch port.

Not compared, by design (docs/compatibility.md): me's `cls` and `size` describe memcached's slab
item; rend-l2 has no slab classes (cls=0) and reports the bytes it stores for the item. And the
"hit before" mark (mg h, me fetch) counts the reads rend-l2 executes: an mg answered from an L1
copy, or a classic get, gets or gat, leaves it unset (marking it would make every first read of an
item an L2 write).
"""
import re

import test_conformance_meta as meta
import test_conformance_tiered as tiered
from meta_corpus import normalize_meta

_ME_LAYOUT = re.compile(rb"(ME \S+ exp=\S+ la=\S+ cas=\S+ fetch=\S+) cls=\d+ size=\d+")


def normalize_tiered(data):
    return _ME_LAYOUT.sub(rb"\1 cls=<cls> size=<size>", normalize_meta(data))


class TieredMetaConformanceTest(meta.MetaConformanceTest, tiered.TieredConformanceTest):
    """The tiered stack of test_conformance_tiered (its setUp), the meta corpus (its tests)."""
    PORT = "main"
    NOT_COMPARED = {
        "me_with_ttl_and_fetch": "an mg answered from L1 does not mark the item fetched in L2",
        "me_fetch_and_u": "an mg answered from L1 does not mark the item fetched in L2",
        "meta_mg_c_matches_gets": "a classic gets does not mark the item fetched in L2",
    }

    def test_meta_protocol(self):
        self.run_meta_corpus(f"m{self.PORT}_", normalize_tiered)


if __name__ == "__main__":
    import unittest
    unittest.main()
