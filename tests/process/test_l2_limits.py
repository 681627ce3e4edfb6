"""What one request may cost rend-l2: a text get/gets/gat whose reply would pass the reply cap fails
as memcached fails a get it cannot allocate, without the process ever holding that reply; a get
line longer than the multi-get bound closes the connection, however it arrives. (An append past
the item limit is in test_l2_conformance, compared with memcached itself.)"""
import socket

from test_l2_lifecycle import MiB, L2ProcessTest

# Engine::get_reply_cap with the defaults: 16 x the 4 MiB output high-water mark.
GET_REPLY_CAP = 64 * MiB
TOO_LARGE = b"SERVER_ERROR out of memory writing get response\r\n"


def memory_kb(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} for pid {pid}")


class L2LimitsTest(L2ProcessTest):
    def test_get_past_the_reply_cap_fails_and_memory_stays_bounded(self):
        l2 = self.start_l2()
        c = self.l2_client(l2, unix=True, timeout=60)
        value = b"v" * (500 * 1024)
        self.assertEqual(c.set(b"a", value), b"STORED\r\n")
        rss_kb = memory_kb(l2.proc.pid, "VmRSS")
        # 400 x 500 KiB: a 200 MB reply, three times the cap. Built whole (with the values it was
        # read from, and for gat a WriteBatch of as many copies), it took several times that.
        keys = b" a" * 400
        for request in (b"get" + keys, b"gets" + keys, b"gat 0" + keys, b"gats 100" + keys):
            with self.subTest(request=request[:8]):
                # A connection each, and only the first line read: a server that does send the
                # reply fails the test at once, not after 200 MB.
                one = self.l2_client(l2, unix=True, timeout=60)
                one.send(request + b"\r\n")
                self.assertEqual(one.read_line(), TOO_LARGE)
                one.send(b"version\r\n")
                self.assertTrue(one.read_line().startswith(b"VERSION "), "nothing else came before it")
                one.close()
        # The server is fine, and the item untouched (gats 100 applied nothing).
        self.assertEqual(c.get(b"a"), value)
        self.assertEqual(c.call(b"get a a\r\n"), (b"VALUE a 0 %d\r\n%s\r\n" % (len(value), value)) * 2 + b"END\r\n")
        self.assertTrue(c.call(b"version\r\n").startswith(b"VERSION "))
        self.assertEqual(l2.proc.poll(), None)
        # The peak: the cap (plus the copy a reallocation makes) and one round of reads
        # (kSegmentKeys values, 64 MB here) above where it started, about 260 MB measured, with
        # room to spare. Without the cap the first get alone took it past 2 GB.
        peak_kb = memory_kb(l2.proc.pid, "VmHWM")
        self.assertLess((peak_kb - rss_kb) * 1024, 8 * GET_REPLY_CAP,
                        f"VmRSS {rss_kb} kB before, VmHWM {peak_kb} kB after")

    def test_get_line_longer_than_the_multi_get_bound_closes_the_connection(self):
        l2 = self.start_l2()
        line = b"get" + b" k" * (150 * 1024) + b"\r\n"  # 300 KiB: past the 256 KiB bound
        for in_one_write in (True, False):
            with self.subTest(in_one_write=in_one_write):
                s = socket.socket(socket.AF_UNIX)
                self.addCleanup(s.close)
                s.settimeout(10)
                s.connect(l2.socket)
                try:
                    if in_one_write:
                        s.sendall(line)
                    else:
                        for i in range(0, len(line), 4096):
                            s.sendall(line[i:i + 4096])
                except (BrokenPipeError, ConnectionResetError):
                    pass  # closed while we were still sending: that is the answer
                got = b""
                try:
                    while True:
                        d = s.recv(65536)  # times out (fails) if the server keeps the connection open
                        if not d:
                            break
                        got += d
                except ConnectionResetError:
                    pass
                self.assertEqual(got, b"", "closed without a word, as for any unframeable line")
        c = self.l2_client(l2, unix=True)
        self.assertTrue(c.call(b"version\r\n").startswith(b"VERSION "))
