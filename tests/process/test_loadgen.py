"""rend-loadgen against a real memcached (every workload, every protocol: text, binary and meta; TCP
and unix socket), its verification against a fake server that corrupts values or misbehaves, and
its open-loop rate."""
import json
import os
import socket
import socketserver
import struct
import subprocess
import threading
import time

from rendtest import BUILD_DIR, ProcessTest

LOADGEN = os.path.join(BUILD_DIR, "loadgen", "rend-loadgen")


class FakeMemcached:
    """A tiny memcached that understands set and get (text, binary, and meta's ms, mg and mn), to
    misbehave on purpose.

    mode "corrupt": every value a get returns has one byte changed; "garbage": every reply is
    garbage; "silent": nothing is ever answered; "hangup": every connection is closed after
    HANGUP_AFTER requests; "badflags": client flags are off by one; "extraflag": a meta hit
    carries a return flag nobody asked for. Runs on a thread; stop() closes everything.
    `commands` counts the text and meta commands received, by name.
    """

    HANGUP_AFTER = 50

    def __init__(self, mode):
        self.mode = mode
        self.data = {}
        self.lock = threading.Lock()
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                outer.serve(self.request)

        class Server(socketserver.ThreadingTCPServer):
            allow_reuse_address = True
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.connections = []
        self.commands = {}
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        for c in list(self.connections):
            try:
                c.close()
            except OSError:
                pass
        self.thread.join(10)

    def corrupt(self, value):
        if self.mode != "corrupt" or not value:
            return value
        i = len(value) // 2
        return value[:i] + bytes([value[i] ^ 0x01]) + value[i + 1:]

    def serve(self, sock):
        self.connections.append(sock)
        sock.settimeout(30)
        buf = b""
        served = 0
        while True:
            try:
                chunk = sock.recv(1 << 16)
            except OSError:
                return
            if not chunk:
                return
            if self.mode == "silent":
                continue
            if self.mode == "garbage":
                sock.sendall(b"HELLO THERE\r\n")
                continue
            buf += chunk
            out = []
            while buf:
                n = self.binary(buf, out) if buf[0] == 0x80 else self.text(buf, out)
                if n == 0:
                    break
                buf = buf[n:]
                served += 1
            if out:
                sock.sendall(b"".join(out))
            if self.mode == "hangup" and served >= self.HANGUP_AFTER:
                return  # socketserver closes the connection

    def item_flags(self, item):
        return item[0] + 1 if self.mode == "badflags" else item[0]

    def meta(self, buf, end, parts, out):
        """ms <key> <len> F<flags> ..., mg <key> <flags> (v, f, k, q honoured) and mn."""
        if parts[0] == b"mn":
            out.append(b"MN\r\n")
            return end + 2
        if parts[0] == b"ms":
            size = int(parts[2])
            total = end + 2 + size + 2
            if len(buf) < total:
                return 0
            flags = next((int(t[1:]) for t in parts[3:] if t.startswith(b"F")), 0)
            with self.lock:
                self.data[parts[1]] = (flags, buf[end + 2:end + 2 + size])
            out.append(b"HD\r\n")
            return total
        asked = parts[2:]
        with self.lock:
            item = self.data.get(parts[1])
        if not item:
            if b"q" not in asked:
                out.append(b"EN\r\n")
            return end + 2
        tokens = [b"f%d" % self.item_flags(item) if t == b"f" else b"k" + parts[1] for t in asked if t in (b"f", b"k")]
        if self.mode == "extraflag":
            tokens.append(b"t-1")
        value = self.corrupt(item[1])
        out.append(b"VA %d %s\r\n%s\r\n" % (len(value), b" ".join(tokens), value))
        return end + 2

    def text(self, buf, out):
        end = buf.find(b"\r\n")
        if end < 0:
            return 0
        parts = buf[:end].split()
        if parts:
            with self.lock:
                self.commands[parts[0].decode()] = self.commands.get(parts[0].decode(), 0) + 1
        if parts and parts[0] in (b"ms", b"mg", b"mn"):
            return self.meta(buf, end, parts, out)
        if parts and parts[0] == b"set":
            size = int(parts[4])
            total = end + 2 + size + 2
            if len(buf) < total:
                return 0
            with self.lock:
                self.data[parts[1]] = (int(parts[2]), buf[end + 2:end + 2 + size])
            out.append(b"STORED\r\n")
            return total
        if parts and parts[0] == b"get":
            for key in parts[1:]:
                with self.lock:
                    item = self.data.get(key)
                if item:
                    value = self.corrupt(item[1])
                    out.append(b"VALUE %s %d %d\r\n%s\r\n" % (key, self.item_flags(item), len(value), value))
            out.append(b"END\r\n")
            return end + 2
        out.append(b"ERROR\r\n")
        return end + 2

    def binary(self, buf, out):
        if len(buf) < 24:
            return 0
        _, opcode, keylen, extlen, _, _, bodylen, opaque, _ = struct.unpack(">BBHBBHIIQ", buf[:24])
        if len(buf) < 24 + bodylen:
            return 0
        body = buf[24:24 + bodylen]
        extras, key, value = body[:extlen], body[extlen:extlen + keylen], body[extlen + keylen:]

        def reply(status, extras=b"", value=b""):
            out.append(struct.pack(">BBHBBHIIQ", 0x81, opcode, 0, len(extras), 0, status,
                                   len(extras) + len(value), opaque, 1) + extras + value)

        if opcode == 0x01:  # set
            with self.lock:
                self.data[key] = (struct.unpack(">I", extras[:4])[0], value)
            reply(0)
        elif opcode == 0x00:  # get
            with self.lock:
                item = self.data.get(key)
            if item:
                reply(0, struct.pack(">I", self.item_flags(item)), self.corrupt(item[1]))
            else:
                reply(1, value=b"Not found")
        else:
            reply(0x81, value=b"Unknown command")
        return 24 + bodylen


def mc_stats(port):
    """memcached's "stats", as a dict of strings."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"stats\r\n")
        data = b""
        while not data.endswith(b"END\r\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return {p[1]: p[2] for p in (line.split(" ", 2) for line in data.decode().split("\r\n")) if len(p) == 3}


class LoadgenTest(ProcessTest):
    def loadgen(self, *args, timeout=120):
        """Runs rend-loadgen with --json; returns (exit code, parsed report, stderr)."""
        cmd = [LOADGEN, "--json", *[str(a) for a in args]]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        try:
            report = json.loads(out.stdout)
        except json.JSONDecodeError:
            self.fail(f"{' '.join(cmd)}: not JSON (exit {out.returncode}):\n{out.stdout}\n{out.stderr}")
        return out.returncode, report, out.stderr

    def assert_clean(self, code, report, what):
        summary = json.dumps([{k: p[k] for k in ("name", "requests", "errors", "error_samples", "aborted")}
                              for p in report["phases"]], indent=1)
        self.assertEqual(code, 0, f"{what}: exit code\n{summary}")
        self.assertTrue(report["ok"], f"{what}\n{summary}")
        self.assertEqual(report["errors"], 0, f"{what}\n{summary}")
        for phase in report["phases"]:
            self.assertGreater(phase["requests"], 0, f"{what}: phase {phase['name']} did nothing")
            self.assertEqual(phase["aborted"], 0, what)
            self.assertGreater(phase["cpu"]["us_per_request"], 0, what)

    # Short runs of every workload, each checked end to end (values byte-verified where the
    # workload verifies them).
    WORKLOADS = [
        ("blast", ["--ops", 20000, "-c", 8, "--pipeline", 4, "--value-size", "10:2000", "--key-space", 2000]),
        ("setget", ["--key-space", 3000, "-c", 8, "--pipeline", 2, "--value-size", "0:5000"]),
        ("sizes", ["--size-step", 65536, "-c", 4]),
        ("fill", ["--key-space", 5000, "-c", 8, "--pipeline", 8, "--value-size", "100:3000"]),
        ("setops", ["--key-space", 400, "-c", 8, "--pipeline", 3, "--value-size", "1:4000"]),
        ("bench", ["--ops", 20000, "-c", 16]),
        ("mix", ["--ops", 10000, "-c", 8, "--key-dist", "zipf", "--get-ratio", 0.7, "--value-size", "50:500"]),
    ]

    def run_every_workload(self, protocol):
        mc = self.start_memcached(memory_mb=1024)
        for name, args in self.WORKLOADS:
            with self.subTest(workload=name, protocol=protocol):
                code, report, _ = self.loadgen("--port", mc.port, "--protocol", protocol, "--workload", name,
                                               "--threads", 2, *args)
                self.assert_clean(code, report, f"{name} {protocol}")
                self.assertEqual(report["params"]["workload"], name)
                self.assertEqual(report["params"]["protocol"], protocol)
                measured = [p for p in report["phases"] if p["measured"]]
                self.assertEqual(len(measured), 1)
                if name == "sizes":
                    # Every size of the schedule was set and read back, the largest included.
                    self.assertEqual(measured[0]["requests"], 2 * report["params"]["sizes"])
                    self.assertEqual(measured[0]["commands"]["get"]["hits"], report["params"]["sizes"])
                if name == "blast":
                    self.assertEqual(len(measured[0]["commands"]), 12, "blast sends every command")
                if name in ("bench", "mix"):
                    self.assertEqual([p["name"] for p in report["phases"]], ["preload", name])
                if name == "setget":
                    get = measured[0]["commands"]["get"]
                    self.assertEqual(get["hits"], 3000)

    def test_every_workload_text(self):
        self.run_every_workload("text")

    def test_every_workload_binary(self):
        self.run_every_workload("binary")

    def test_every_workload_meta(self):
        self.run_every_workload("meta")

    def test_counts_match_memcached(self):
        # What loadgen counts is what memcached served: every mg a get (hit or miss), every ms a
        # set, in both protocols. Then blast: every command, multi-gets of 2..32 keys.
        for protocol in ("text", "meta"):
            with self.subTest(protocol=protocol):
                mc = self.start_memcached(memory_mb=256)
                code, report, _ = self.loadgen("--port", mc.port, "--protocol", protocol, "--workload", "bench",
                                               "--ops", 30000, "-c", 8, "--pipeline", 4, "--threads", 2)
                self.assert_clean(code, report, f"bench {protocol}")
                preload, bench = report["phases"]
                get, sets = bench["commands"]["get"], bench["commands"]["set"]
                self.assertEqual(get["requests"] + sets["requests"], 30000)
                self.assertEqual(get["hits"], get["requests"])  # preloaded: every get hits
                stats = mc_stats(mc.port)
                self.assertEqual(int(stats["cmd_get"]), get["requests"], stats)
                self.assertEqual(int(stats["get_hits"]), get["hits"], stats)
                self.assertEqual(int(stats["cmd_set"]), preload["requests"] + sets["requests"], stats)

                code, report, _ = self.loadgen("--port", mc.port, "--protocol", protocol, "--workload", "blast",
                                               "--ops", 20000, "-c", 4, "--pipeline", 8, "--key-space", 500,
                                               "--multiget-max", 32)
                self.assert_clean(code, report, f"blast {protocol}")
                commands = report["phases"][0]["commands"]
                self.assertEqual(sum(c["requests"] for c in commands.values()), 20000)
                self.assertEqual(len(commands), 12)
                multiget = commands["multiget"]
                self.assertGreaterEqual(multiget["keys"], 2 * multiget["requests"])
                self.assertLessEqual(multiget["keys"], 32 * multiget["requests"])
                self.assertGreater(multiget["hits"], 0)
                # (memcached counts gat and touch differently in text and meta, so its stats are
                # not compared here.)

    def test_unix_socket(self):
        mc = self.start_memcached(unix=True)
        for protocol in ("text", "binary", "meta"):
            code, report, _ = self.loadgen("--unix", mc.path, "--protocol", protocol, "--workload", "setget",
                                           "--key-space", 2000, "-c", 4, "--value-size", "1:3000")
            self.assert_clean(code, report, f"setget over a unix socket, {protocol}")
            self.assertTrue(report["params"]["target"].startswith("unix:"))

    def test_corrupted_value_is_caught(self):
        for protocol in ("text", "binary", "meta"):
            with self.subTest(protocol=protocol):
                fake = FakeMemcached("corrupt").start()
                self.addCleanup(fake.stop)
                code, report, _ = self.loadgen("--port", fake.port, "--protocol", protocol, "--workload", "setget",
                                               "--key-space", 200, "-c", 2, "--value-size", "10:100")
                self.assertNotEqual(code, 0)
                self.assertFalse(report["ok"])
                errors = report["phases"][0]["errors"]
                self.assertEqual(errors["wrong_value"], 200, errors)  # every get, and nothing else
                self.assertEqual(errors["total"], 200, errors)
                self.assertTrue(any("wrong value" in s and "wrong from byte" in s
                                    for s in report["phases"][0]["error_samples"]),
                                report["phases"][0]["error_samples"])

    def test_honest_fake_server_passes(self):
        # The same fake without the corruption passes: the failure above is the corruption.
        for protocol in ("text", "binary", "meta"):
            fake = FakeMemcached("honest").start()
            self.addCleanup(fake.stop)
            code, report, _ = self.loadgen("--port", fake.port, "--protocol", protocol, "--workload", "setget",
                                           "--key-space", 200, "-c", 2, "--value-size", "10:100")
            self.assert_clean(code, report, f"setget against the honest fake, {protocol}")
            # Each protocol speaks its own commands: a meta run sends nothing but ms and mg.
            expected = {"text": {"set": 200, "get": 200}, "binary": {}, "meta": {"ms": 200, "mg": 200}}[protocol]
            self.assertEqual(fake.commands, expected, protocol)

    def test_wrong_flags_are_caught(self):
        for protocol in ("text", "binary", "meta"):
            with self.subTest(protocol=protocol):
                fake = FakeMemcached("badflags").start()
                self.addCleanup(fake.stop)
                code, report, _ = self.loadgen("--port", fake.port, "--protocol", protocol, "--workload", "setget",
                                               "--key-space", 100, "-c", 2, "--value-size", "10:100")
                self.assertNotEqual(code, 0)
                errors = report["phases"][0]["errors"]
                self.assertEqual(errors["wrong_value"], 100, errors)
                self.assertEqual(errors["total"], 100, errors)
                self.assertTrue(any("flags" in s for s in report["phases"][0]["error_samples"]))

    def test_meta_reply_flag_not_asked_for_is_a_protocol_error(self):
        fake = FakeMemcached("extraflag").start()
        self.addCleanup(fake.stop)
        code, report, _ = self.loadgen("--port", fake.port, "--protocol", "meta", "--workload", "setget",
                                       "--key-space", 20, "-c", 1, "--ops", 40, timeout=60)
        self.assertNotEqual(code, 0)
        phase = report["phases"][0]
        self.assertGreater(phase["errors"]["protocol"], 0, phase)
        self.assertTrue(any("flag not asked for" in s for s in phase["error_samples"]), phase["error_samples"])

    def test_meta_against_a_text_only_server_fails(self):
        # Whatever a server that does not know meta answers is an error, never a pass.
        fake = FakeMemcached("honest").start()
        self.addCleanup(fake.stop)
        code, report, _ = self.loadgen("--port", fake.port, "--protocol", "meta", "--workload", "blast",
                                       "--ops", 200, "-c", 1, timeout=60)
        self.assertNotEqual(code, 0)
        self.assertGreater(report["errors"], 0)

    def test_garbage_is_a_protocol_error(self):
        fake = FakeMemcached("garbage").start()
        self.addCleanup(fake.stop)
        code, report, _ = self.loadgen("--port", fake.port, "--workload", "setget", "--key-space", 10, "-c", 1,
                                       "--ops", 10, timeout=60)
        self.assertNotEqual(code, 0)
        self.assertGreater(report["phases"][0]["errors"]["protocol"], 0, report["phases"][0])

    def test_silent_server_times_out(self):
        fake = FakeMemcached("silent").start()
        self.addCleanup(fake.stop)
        start = time.monotonic()
        code, report, _ = self.loadgen("--port", fake.port, "--workload", "setget", "--key-space", 10, "-c", 2,
                                       "--timeout", 300, "--duration", 1, timeout=60)
        self.assertLess(time.monotonic() - start, 20)
        self.assertNotEqual(code, 0)
        self.assertGreater(report["phases"][0]["errors"]["timeout"], 0, report["phases"][0])

    def test_server_hangups_reconnect(self):
        # Each hangup is one connection error (requests in flight on it are aborted, the kernel
        # operations on its socket cancelled); the connection reconnects and goes on.
        fake = FakeMemcached("hangup").start()
        self.addCleanup(fake.stop)
        code, report, _ = self.loadgen("--port", fake.port, "--workload", "setget", "--key-space", 200, "-c", 2,
                                       "--pipeline", 2, "--duration", 2, timeout=60)
        self.assertNotEqual(code, 0)
        phase = report["phases"][0]
        self.assertGreaterEqual(phase["errors"]["connection"], 4, phase)
        self.assertEqual(phase["errors"]["total"], phase["errors"]["connection"], phase)
        # More than the two first connections could have served: the reconnects worked.
        self.assertGreater(phase["requests"], 4 * FakeMemcached.HANGUP_AFTER, phase)

    def test_nothing_listening_fails_fast(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]  # bound, not listening: connections are refused
            start = time.monotonic()
            code, report, _ = self.loadgen("--port", port, "--workload", "bench", "--duration", 2, timeout=60)
        self.assertLess(time.monotonic() - start, 20)
        self.assertNotEqual(code, 0)
        self.assertGreater(sum(p["errors"]["connection"] for p in report["phases"]), 0)

    def test_open_loop_rate_holds(self):
        mc = self.start_memcached()
        code, report, _ = self.loadgen("--port", mc.port, "--workload", "bench", "--rate", 2000, "--duration", 3,
                                       "-c", 8)
        self.assert_clean(code, report, "open loop")
        bench = report["phases"][-1]
        self.assertEqual(report["params"]["loop"], "open")
        self.assertAlmostEqual(bench["ops_per_s"], 2000, delta=2000 * 0.05, msg=bench)
        self.assertAlmostEqual(bench["requests"], 6000, delta=6000 * 0.05, msg=bench)
        self.assertGreater(bench["send_lag_us"]["max"], 0)  # the open loop measures its own lateness

    def test_text_report_lists_parameters_and_cpu(self):
        mc = self.start_memcached()
        out = subprocess.run([LOADGEN, "--port", str(mc.port), "--workload", "bench", "--ops", "5000", "-c", "4"],
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        for field in ("workload", "target", "protocol", "threads", "connections", "pipeline", "loop", "limit",
                      "keys", "values", "get ratio", "seed", "timeout"):
            self.assertRegex(out.stdout, rf"(?m)^  {field}\s", field)
        self.assertIn("p99.9", out.stdout)
        self.assertRegex(out.stdout, r"loadgen cpu .* us/request")
        self.assertIn("result: OK", out.stdout)
        self.assertNotIn("\r", out.stdout)  # no progress line when stdout is not a terminal

    def test_usage_errors(self):
        for args in (["--workload", "nope"], ["--key-length", "3"], ["--value-size", "10:5"],
                     ["--zipf-theta", "2.5"], ["--zipf-theta", "0"], ["--pipeline", "0"]):
            out = subprocess.run([LOADGEN, *args], capture_output=True, text=True, timeout=30)
            self.assertNotEqual(out.returncode, 0, args)
            self.assertTrue(out.stderr, args)
