"""rend-l2 against memcached 1.6.18 itself: the same request scripts, byte-identical replies.

Each script is sent in one piece (so it is also a pipelining test) to a fresh memcached and to
rend-l2, and everything each sends back until it goes quiet is compared. Only what cannot match is
normalized: CAS uniques (memcached counts from 1, rend-l2 from the clock) become "CAS" / 1.
Version strings and stats are left out; binary verbosity too (memcached 1.6.18 answers it as an
unknown command and then mis-frames the stream; rend-l2 answers "Unknown command" cleanly).
"""
import re
import struct
import threading

from rendtest import Client
from test_l2_lifecycle import L2ProcessTest

BIG = 2 * 1024 * 1024  # clearly above both servers' 1 MiB item limit
HALF = 600 * 1024  # two of them are clearly above it: an append that makes one is NOT_STORED


def text_scripts():
    long_key = b"k" * 251
    return {
        "storage": b"set a 5 0 3\r\nabc\r\nget a\r\nadd a 0 0 1\r\nx\r\nadd b 7 0 1\r\ny\r\nget a b\r\n"
                   b"replace c 0 0 1\r\nz\r\nreplace b 9 0 2\r\nzz\r\nget b\r\nappend a 1 1 2\r\nde\r\n"
                   b"prepend a 1 1 2\r\n__\r\nget a\r\nappend nope 0 0 1\r\nx\r\nprepend nope 0 0 1\r\nx\r\n"
                   b"set empty 0 0 0\r\n\r\nget empty\r\nget a a b nope a\r\ngets a\r\n",
        "cas": b"cas nope 0 0 1 1\r\nx\r\nset c 0 0 1\r\n1\r\ncas c 0 0 1 999999999999\r\nx\r\n"
               b"cas c 0 0 1 0\r\nx\r\ncas c 0 0 1 abc\r\nx\r\ncas c 0 0 1\r\nx\r\nget c\r\n",
        "delete": b"set d 0 0 1\r\n1\r\ndelete d\r\ndelete d\r\ndelete d 0\r\ndelete d 1\r\n"
                  b"delete d noreply\r\ndelete d 0 noreply\r\ndelete\r\ndelete a b c d\r\n",
        "arith": b"set n 0 0 2\r\n10\r\nincr n 5\r\ndecr n 100\r\nget n\r\nincr n 18446744073709551615\r\n"
                 b"incr n 2\r\nset s 0 0 3\r\nabc\r\nincr s 1\r\nincr nope 1\r\ndecr nope 1\r\nincr n abc\r\n"
                 b"incr n -1\r\nincr n\r\nset big 3 0 20\r\n18446744073709551615\r\nincr big 1\r\nget big\r\n"
                 b"set sp 0 0 3\r\n 12\r\nincr sp 1\r\nset e 0 0 0\r\n\r\nincr e 1\r\ndecr n 1 noreply\r\nget n\r\n"
                 b"set w 0 0 3\r\n100\r\ndecr w 1\r\nget w\r\nincr w 5\r\nget w\r\n",
        "touch_gat": b"set t 3 100 1\r\nv\r\ntouch t 10\r\ntouch nope 10\r\ntouch t abc\r\ntouch t\r\n"
                     b"gat 100 t nope t\r\ngats 0 nope\r\ngat abc t\r\ngat 10\r\ntouch t -1\r\nget t\r\n"
                     b"set u 0 0 1\r\nu\r\ntouch u 10 noreply\r\nget u\r\n",
        "noreply": b"set a 0 0 1 noreply\r\n1\r\nadd a 0 0 1 noreply\r\n2\r\nreplace zz 0 0 1 noreply\r\n3\r\n"
                   b"append a 0 0 1 noreply\r\n4\r\nincr a 1 noreply\r\nincr zz 1 noreply\r\nget a\r\n"
                   b"set x 0 0 abc noreply\r\nverbosity 1 noreply\r\nverbosity 1\r\nverbosity\r\nget a\r\n",
        "errors": b"bogus\r\n\r\nget\r\ngets\r\nset a 0 0\r\nset a 0 0 abc\r\nset a abc 0 1\r\nx\r\n"
                  b"set a 0 0 -1\r\nset " + long_key + b" 0 0 1\r\nx\r\n"
                  b"set a 0 0 1\r\nab\r\nget a\r\nset a 0 0 1 2 3 4 5\r\nGET a\r\nincr\r\ntouch a\r\n"
                  b"flush_all abc\r\nflush_all 0 0 0\r\nverbosity abc\r\n",
        # memcached drops every reply still queued when a get has a too-long key (a bug we don't
        # copy), so that case goes first in its own script.
        "long_get_key": b"get " + long_key + b"\r\nset a 0 0 1\r\n1\r\n",
        "too_large": b"set keep 0 0 3\r\nold\r\nset keep 0 0 %d\r\n%s\r\nget keep\r\n"
                     b"set other 0 0 3\r\nold\r\nadd other 0 0 %d\r\n%s\r\nget other\r\n"
                     % (BIG, b"x" * BIG, BIG, b"y" * BIG),
        "append_too_large": b"set h 0 0 %d\r\n%s\r\nappend h 0 0 %d\r\n%s\r\nprepend h 0 0 %d\r\n%s\r\n"
                            b"append h 0 0 1 noreply\r\n%s\r\nappend h 0 0 1\r\n+\r\nget h\r\n"
                            % (HALF, b"h" * HALF, HALF, b"a" * HALF, HALF, b"p" * HALF, b"q"),
        "flush": b"set f 0 0 1\r\n1\r\nflush_all\r\nget f\r\nset f 0 0 1\r\n2\r\nflush_all 0\r\nget f\r\n"
                 b"set f 0 0 1\r\n3\r\nflush_all -1\r\nget f\r\nset f 0 0 1\r\n4\r\nflush_all noreply\r\n"
                 b"get f\r\nset g 0 0 1\r\n5\r\nget g\r\n",
        "quit": b"set q 0 0 1\r\n1\r\nget q\r\nquit\r\nget q\r\n",
        "garbage_line": b"get a\r\n" + b"x" * 3000 + b"\r\nget a\r\n",
    }


def pkt(opcode, key=b"", value=b"", extras=b"", opaque=0, cas=0):
    return struct.pack(">BBHBBHIIQ", 0x80, opcode, len(key), len(extras), 0, 0,
                       len(extras) + len(key) + len(value), opaque, cas) + extras + key + value


def store_extras(flags=0, exptime=0):
    return struct.pack(">II", flags, exptime)


def arith_extras(delta, initial=0, exptime=0):
    return struct.pack(">QQI", delta, initial, exptime)


def binary_scripts():
    s, e = store_extras, arith_extras
    return {
        "get_family": pkt(0x01, b"a", b"va", s(5), opaque=1) + pkt(0x00, b"a", opaque=2) + pkt(0x00, b"no", opaque=3)
                      + pkt(0x09, b"no", opaque=4) + pkt(0x09, b"a", opaque=5) + pkt(0x0c, b"a", opaque=6)
                      + pkt(0x0c, b"no", opaque=7) + pkt(0x0d, b"no", opaque=8) + pkt(0x0d, b"a", opaque=9)
                      + pkt(0x0a, opaque=10),
        "storage": pkt(0x02, b"b", b"1", s(1)) + pkt(0x02, b"b", b"2", s(2)) + pkt(0x12, b"b", b"3", s())
                   + pkt(0x03, b"zz", b"1", s()) + pkt(0x13, b"zz", b"1", s()) + pkt(0x03, b"b", b"r", s(9))
                   + pkt(0x00, b"b") + pkt(0x11, b"c", b"q", s()) + pkt(0x0e, b"c", b"+") + pkt(0x0f, b"c", b"-")
                   + pkt(0x19, b"c", b">") + pkt(0x1a, b"c", b"<") + pkt(0x0e, b"zz", b"x") + pkt(0x1a, b"zz", b"x")
                   + pkt(0x00, b"c") + pkt(0x01, b"c", b"x", s(), cas=12345) + pkt(0x01, b"zz", b"x", s(), cas=1)
                   + pkt(0x02, b"c", b"x", s(), cas=12345) + pkt(0x0e, b"c", b"x", cas=12345) + pkt(0x0a),
        "delete": pkt(0x01, b"d", b"1", s()) + pkt(0x04, b"d", cas=999) + pkt(0x04, b"d") + pkt(0x04, b"d")
                  + pkt(0x14, b"d") + pkt(0x01, b"d", b"1", s()) + pkt(0x14, b"d") + pkt(0x00, b"d") + pkt(0x0a),
        "arith": pkt(0x05, b"n", extras=e(1, 10)) + pkt(0x05, b"n", extras=e(5, 10)) + pkt(0x06, b"n", extras=e(100))
                 + pkt(0x05, b"m", extras=e(1, 0, 0xffffffff)) + pkt(0x15, b"m", extras=e(1, 0, 0xffffffff))
                 + pkt(0x15, b"n", extras=e(3)) + pkt(0x16, b"n", extras=e(1)) + pkt(0x00, b"n")
                 + pkt(0x01, b"s", b"abc", s()) + pkt(0x05, b"s", extras=e(1)) + pkt(0x15, b"s", extras=e(1))
                 + pkt(0x05, b"n", extras=e(1), cas=77) + pkt(0x06, b"w", extras=e(1, 7, 100)) + pkt(0x00, b"w")
                 + pkt(0x0a),
        "touch_gat": pkt(0x01, b"t", b"tv", s(3, 100)) + pkt(0x1c, b"t", extras=struct.pack(">I", 10))
                     + pkt(0x1c, b"no", extras=struct.pack(">I", 10)) + pkt(0x1d, b"t", extras=struct.pack(">I", 10))
                     + pkt(0x1e, b"no", extras=struct.pack(">I", 10)) + pkt(0x1e, b"t", extras=struct.pack(">I", 10))
                     + pkt(0x23, b"no", extras=struct.pack(">I", 10)) + pkt(0x24, b"no", extras=struct.pack(">I", 1))
                     + pkt(0x24, b"t", extras=struct.pack(">I", 10)) + pkt(0x1d, b"no", extras=struct.pack(">I", 1))
                     + pkt(0x0a),
        "flush_noop": pkt(0x01, b"f", b"1", s()) + pkt(0x08, opaque=5) + pkt(0x00, b"f") + pkt(0x01, b"f", b"2", s())
                      + pkt(0x18) + pkt(0x00, b"f") + pkt(0x08, extras=struct.pack(">I", 0)) + pkt(0x0a, opaque=9),
        # Unknown opcodes with a key or extras make memcached mis-frame the stream; how the shared
        # parser handles those is the parser's own tests' business.
        "unknown": pkt(0x30, b"", b"junk") + pkt(0x0a) + pkt(0x5f, b"", b"") + pkt(0x0a),
        "too_large": pkt(0x01, b"big", b"old", s()) + pkt(0x01, b"big", b"x" * BIG, s()) + pkt(0x00, b"big")
                     + pkt(0x11, b"big2", b"old", s()) + pkt(0x11, b"big2", b"x" * BIG, s()) + pkt(0x00, b"big2")
                     + pkt(0x0a),
        "append_too_large": pkt(0x01, b"h", b"h" * HALF, s()) + pkt(0x0e, b"h", b"a" * HALF, opaque=1)
                            + pkt(0x0f, b"h", b"p" * HALF, opaque=2) + pkt(0x19, b"h", b"a" * HALF, opaque=3)
                            + pkt(0x1a, b"h", b"p" * HALF, opaque=4) + pkt(0x0e, b"h", b"+", opaque=5)
                            + pkt(0x00, b"h", opaque=6) + pkt(0x0a),
        "bad_extras_closes": pkt(0x01, b"k", b"v", b"") + pkt(0x0a),
        "quit": pkt(0x0a) + pkt(0x07, opaque=3) + pkt(0x0a),
        "quitq": pkt(0x17) + pkt(0x0a),
        "stat_groups": pkt(0x10, b"bogus") + pkt(0x10, b"reset") + pkt(0x0a),
    }


def normalize_text(data):
    return re.sub(rb"^(VALUE \S+ \d+ \d+) \d+\r\n", rb"\1 CAS\r\n", data, flags=re.M)


def normalize_binary(data):
    out, i = [], 0
    while i + 24 <= len(data):
        magic, op, kl, el, dt, st, bl, opq, cas = struct.unpack(">BBHBBHIIQ", data[i:i + 24])
        out.append((magic, op, kl, el, dt, st, bl, opq, 1 if cas else 0, data[i + 24:i + 24 + bl]))
        i += 24 + bl
    return out, data[i:]


class L2ConformanceTest(L2ProcessTest):
    def exchange(self, path, script, results, name):
        c = Client(path=path, timeout=10)
        try:
            c.send(script)
            results[name] = c.read_available(0.3)
        finally:
            c.close()

    def compare(self, scripts, normalize):
        mc = self.start_memcached(unix=True)
        l2 = self.start_l2()
        for name, script in scripts.items():
            with self.subTest(script=name):
                # Same starting point for both: empty (flush_all is itself checked in a script).
                for path in (mc.path, l2.socket):
                    c = Client(path=path, timeout=10)
                    self.assertEqual(c.call(b"flush_all\r\n"), b"OK\r\n")
                    c.close()
                results = {}
                threads = [threading.Thread(target=self.exchange, args=(path, script, results, who))
                           for who, path in (("memcached", mc.path), ("rend-l2", l2.socket))]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join(30)
                self.assertTrue(results.get("memcached"), "memcached answered")
                got, want = normalize(results.get("rend-l2", b"")), normalize(results["memcached"])
                # Not assertEqual: its diff of replies holding large values takes minutes.
                if got != want:
                    self.fail(f"rend-l2 answered\n{repr(got)[:3000]}\nmemcached answered\n{repr(want)[:3000]}")

    def test_text_replies_match_memcached(self):
        self.compare(text_scripts(), normalize_text)

    def test_binary_replies_match_memcached(self):
        self.compare(binary_scripts(), normalize_binary)
