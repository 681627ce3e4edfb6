"""Differential conformance of memcached's meta protocol (mg ms md ma mn me): rend must answer the
corpus of tests/process/meta_corpus.py (valid, malformed, pipelined with q and mn, stampede
sequences, base64 keys) byte for byte as memcached 1.6.18 does, after normalize_meta (CAS values,
and the last digit of seconds counters), in every mode. This file runs l1only with plain L1: two
workers, two connections per backend, as by default; test_conformance_meta_tiered runs the
tiered modes.
"""
import test_conformance as base
from meta_corpus import meta_cases, normalize_meta


class MetaConformanceTest(base.ConformanceTest):
    # Cases not compared in this mode, with the reason (docs/compatibility.md).
    NOT_COMPARED = {}

    def run_meta_corpus(self, label, normalize=normalize_meta):
        cases = [(n, s) for n, s in meta_cases() if n not in self.NOT_COMPARED]
        self.run_corpus(label, cases, normalize)

    def test_meta_protocol(self):
        self.run_meta_corpus("ml")

    test_text_protocol = None
    test_binary_protocol = None
    test_other_memcached_text_commands = None


if __name__ == "__main__":
    import unittest
    unittest.main()
