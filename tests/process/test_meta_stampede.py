"""Stampede protection across workers and tiers: 50 clients, spread over both workers, ask for the
same key at the same moment. Exactly one of them may recompute it:

- a missing key, `mg <key> N30 v c`: one reply carries W (the win), every other one Z (another
  client has won) and no W; the winner's ms lands and everyone reads the new value, unmarked;
- after `md <key> I` (stale): every reader gets the stale value with X, exactly one also W, the
  rest Z; after the winner's ms everyone reads the new value without X.

In l1only memcached keeps the marks (with chunked L1 the workers keep them in the value's head);
in l1l2, l1l2batch and l1l2 with chunked L1 rend-l2 does, so the same has to hold there, with L1
copies in between. Each phase is repeated on new keys.
"""
import threading

from rendtest import ProcessTest, free_port

CLIENTS = 50
ROUNDS = 3


def read_meta_reply(client):
    """One meta reply: (status line without CRLF, data block or None)."""
    line = client.read_line()[:-2]
    if line.startswith(b"VA "):
        n = int(line.split(b" ")[1])
        return line, client.read_exact(n + 2)[:-2]
    return line, None


def flags_of(line):
    return set(line.split(b" ")[2 if line.startswith(b"VA ") else 1:])


class StampedeTest(ProcessTest):
    def check_mode(self, port, worker_pids, label):
        clients = [self.client(port, timeout=20.0) for _ in range(CLIENTS)]
        on = {c.stats()["pid"] for c in clients}
        self.assertEqual(on, {str(p) for p in worker_pids.values()}, f"{label}: the 50 clients did not reach every worker")
        for round_ in range(ROUNDS):
            key = f"{label}-hot-{round_}".encode()
            self.stampede_on_missing_key(clients, key, label)
            self.stampede_on_stale_key(clients, key, label)

    def all_at_once(self, clients, request):
        """Every client sends `request` at the same moment; their replies, in client order."""
        replies = [None] * len(clients)
        start = threading.Barrier(len(clients))

        def one(i, c):
            start.wait()
            c.send(request)
            replies[i] = read_meta_reply(c)

        threads = [threading.Thread(target=one, args=(i, c)) for i, c in enumerate(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
            self.assertFalse(t.is_alive(), "a client got no reply within 60 s")
        return replies

    def stampede_on_missing_key(self, clients, key, label):
        replies = self.all_at_once(clients, b"mg " + key + b" N30 v c\r\n")
        winners = [i for i, (line, _) in enumerate(replies) if b"W" in flags_of(line)]
        self.assertEqual(len(winners), 1, f"{label}: one win for a missing key, got {replies}")
        for i, (line, data) in enumerate(replies):
            self.assertTrue(line.startswith(b"VA 0 "), f"{label}: {line!r}")
            self.assertEqual(data, b"")
            if i != winners[0]:
                self.assertIn(b"Z", flags_of(line), f"{label}: a loser is told another client won: {line!r}")
                self.assertNotIn(b"W", flags_of(line))
        winner = clients[winners[0]]
        winner.send(b"ms " + key + b" 5 T60\r\nfresh\r\n")
        self.assertEqual(read_meta_reply(winner), (b"HD", None))
        for line, data in self.all_at_once(clients, b"mg " + key + b" v\r\n"):
            self.assertEqual((line, data), (b"VA 5", b"fresh"), f"{label}: the recomputed value, unmarked")

    def stampede_on_stale_key(self, clients, key, label):
        clients[0].send(b"md " + key + b" I\r\n")
        self.assertEqual(read_meta_reply(clients[0]), (b"HD", None))
        replies = self.all_at_once(clients, b"mg " + key + b" v c\r\n")
        winners = [i for i, (line, _) in enumerate(replies) if b"W" in flags_of(line)]
        self.assertEqual(len(winners), 1, f"{label}: one win for a stale key, got {replies}")
        for i, (line, data) in enumerate(replies):
            self.assertEqual(data, b"fresh", f"{label}: readers keep the stale value meanwhile")
            self.assertIn(b"X", flags_of(line), f"{label}: the value is marked stale: {line!r}")
            if i != winners[0]:
                self.assertIn(b"Z", flags_of(line), f"{label}: {line!r}")
        winner = clients[winners[0]]
        winner.send(b"ms " + key + b" 6 T60\r\nfresh2\r\n")
        self.assertEqual(read_meta_reply(winner), (b"HD", None))
        for line, data in self.all_at_once(clients, b"mg " + key + b" v\r\n"):
            self.assertEqual((line, data), (b"VA 6", b"fresh2"), f"{label}: no X once the new value landed")

    def test_l1only(self):
        rend = self.start_rend(workers=2)
        self.check_mode(rend.port, rend.worker_pids(), "l1only")

    def test_l1only_with_chunked_l1(self):
        rend = self.start_rend(workers=2, config={"l1": {"chunked": True, "chunk_size": 480}})
        self.check_mode(rend.port, rend.worker_pids(), "l1only-chunked")

    def test_tiered_main_and_batch_ports(self):
        rend = self.start_rend(workers=2, config={
            "l2": {"enabled": True, "data_dir": self.tmp + "/l2", "address": self.tmp + "/run/rend-l2.sock"},
            "listen": {"batch_port": free_port()},
        })
        self.check_mode(rend.port, rend.worker_pids(), "l1l2")
        self.check_mode(rend.config["listen"]["batch_port"], rend.worker_pids(), "l1l2batch")

    def test_tiered_with_chunked_l1(self):
        rend = self.start_rend(workers=2, config={
            "l2": {"enabled": True, "data_dir": self.tmp + "/l2", "address": self.tmp + "/run/rend-l2.sock"},
            "l1": {"chunked": True, "chunk_size": 480},
        })
        self.check_mode(rend.port, rend.worker_pids(), "l1l2-chunked")


if __name__ == "__main__":
    import unittest
    unittest.main()
