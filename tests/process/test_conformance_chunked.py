"""The differential corpus of test_conformance, with chunked L1: rend storing every value as a
head and chunks must still answer every case byte for byte as memcached does (CAS values aside,
as in the plain run). Small items (480 bytes), so the corpus's values span several chunks."""
import test_conformance as base

class ChunkedConformanceTest(base.ConformanceTest):
    def setUp(self):
        super(base.ConformanceTest, self).setUp()
        self.direct = self.start_memcached()
        self.rend = self.start_rend(workers=1, config={"l1": {"chunked": True, "chunk_size": 480}})
        self.pids = self.rend.worker_pids()

    def test_text_protocol(self):
        self.run_corpus("t", base.text_cases())

    def test_binary_protocol(self):
        self.run_corpus("b", base.binary_cases())

    def test_largest_item_memcached_takes(self):
        # memcached -I 1m counts its item header (56 bytes), the key and its NUL, the flags and
        # the CRLF against the limit; chunked L1 refuses at the same byte, though its chunks
        # could hold more.
        c = self.client(self.rend.port)
        value = (bytes(range(256)) * 4096)[:(1 << 20) - 59 - len(b"big")]
        self.assertEqual(c.set(b"big", value), b"STORED\r\n")
        self.assertEqual(c.get(b"big"), value)
        self.assertEqual(c.set(b"big", value + b"x"), b"SERVER_ERROR object too large for cache\r\n")
        self.assertIsNone(c.get(b"big"), "a set that was too large drops the old value, as memcached does")

    # The other commands (stats, verbosity, version, ...) and meta commands do not touch values.
    test_other_memcached_text_commands = None


if __name__ == "__main__":
    import unittest
    unittest.main()
