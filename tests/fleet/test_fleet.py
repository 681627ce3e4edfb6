"""deploy/ansible on a fleet of three real systemd hosts (fleet.py): converge from nothing, a second
run and a --check --diff run that change nothing, a configuration rend rejects refused with the
running rend untouched, a reloadable change reloaded in place, memcached replaced and restarted warm,
a restart of rend that keeps its clients' connections open, a new release upgraded in place host
by host (no restart, no drain), a restart-only change that fails on the second host rolled back with
the play stopped before the third, rollback.yml putting a host's previous configuration back, and
a reboot that brings rend back with its L2 data. Throughout every change a verifying client per
host (one retry on a broken connection, paused by the drain hook) must see no failed request and
no wrong value.

The steps build on each other and run in order (test_1 ... test_9)."""
import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest

import fleet

BUILD_DIR = os.environ.get("REND_BUILD_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "build"))
HOSTS = ["h1", "h2", "h3"]


def missing_tools():
    return [t for t in ("systemd-nspawn", "ansible-playbook", "debootstrap", "cpack", "dpkg-deb")
            if shutil.which(t) is None]


@unittest.skipUnless(os.geteuid() == 0, "the fleet needs root (overlay mounts, network namespaces)")
class FleetTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        assert not missing_tools(), f"missing {missing_tools()} (make test installs them)"
        cls.tmp = tempfile.mkdtemp(prefix="rend-fleet-", dir="/tmp")
        built = subprocess.run(["cpack", "-G", "DEB", "--config", os.path.join(BUILD_DIR, "CPackConfig.cmake"),
                                "-B", os.path.join(cls.tmp, "cpack")], capture_output=True, text=True, timeout=300)
        assert built.returncode == 0, built.stdout + built.stderr
        deb = [f for f in os.listdir(os.path.join(cls.tmp, "cpack")) if f.endswith(".deb")][0]
        deb = os.path.join(cls.tmp, "cpack", deb)
        releases = os.path.join(cls.tmp, "releases")
        cls.release = fleet.copy_release(deb, releases)
        cls.version = os.path.basename(cls.release).split("_")[1]
        cls.next_release = fleet.copy_release(deb, releases, version=cls.version + "+fleet2")
        started = time.monotonic()
        rootfs = fleet.host_image(deb)
        print(f"\n  host image {rootfs} ready in {time.monotonic() - started:.1f} s", flush=True)
        cls.fleet = fleet.Fleet(HOSTS, rootfs, cls.tmp)
        try:
            started = time.monotonic()
            cls.fleet.boot()
            print(f"  {len(HOSTS)} hosts booted in {time.monotonic() - started:.1f} s", flush=True)
        except BaseException:
            cls.tearDownClass()
            raise

    config = {}  # the rend_config the fleet runs, as the steps change it

    @classmethod
    def tearDownClass(cls):
        if os.environ.get("REND_FLEET_KEEP"):  # left running to look into; the test says where
            print(f"\n  fleet kept in {cls.tmp} (REND_FLEET_KEEP)", flush=True)
            return
        cls.fleet.destroy()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        for step in ("converged",):
            if not getattr(FleetTest, step, True) and self._testMethodName != "test_1_converge_from_nothing":
                self.skipTest("the fleet did not converge")

    def play(self, name="site.yml", package=None, **kw):
        return self.fleet.playbook(name, package or self.release, **kw)

    def assert_clean_clients(self, clients):
        for name, counts in clients.counts.items():
            self.assertGreater(counts["requests"], 0, name)
            if (counts["failed"], counts["wrong"]) != (0, 0):
                self.fail(f"{name}: {counts}\n{self.what_the_client_saw(name)}")

    def what_the_client_saw(self, name):
        """The client's own log and the host's rend journal, to tell why a request failed."""
        with open(os.path.join(self.fleet.workdir, f"client-{name}.log"), errors="replace") as f:
            lines = f.read().splitlines()
        journal = self.fleet.hosts[name].sh("journalctl -u rend -n 60 --no-pager -o short-precise", check=False).stdout
        return ("client log (first and last 15 lines):\n" + "\n".join(lines[:15] + ["..."] + lines[-15:]) +
                "\nrend's journal:\n" + journal)

    def host_config(self, host):
        return json.loads(self.fleet.hosts[host].sh("cat /etc/rend/rend.json").stdout)

    def assert_serving(self, host):
        h = self.fleet.hosts[host]
        self.assertEqual(h.sh("systemctl is-active rend", check=False).stdout.strip(), "active", host)
        status = h.rend_status()
        self.assertTrue(status and all(w["state"] == "ready" for w in status["workers"]), f"{host}: {status}")
        key = f"probe-{host}".encode()
        self.assertEqual(h.memcached(b"set %s 0 0 2\r\nok\r\nget %s\r\n" % (key, key)),
                         b"STORED\r\nVALUE %s 0 2\r\nok\r\nEND\r\n" % key)

    def test_1_converge_from_nothing(self):
        FleetTest.converged = False
        rc, out, recap = self.play()
        self.assertEqual(rc, 0, out[-6000:])
        for host in HOSTS:
            self.assertGreater(recap[host]["changed"], 0)
            self.assert_serving(host)
            h = self.fleet.hosts[host]
            # Debian's memcached (started when the image installed it) no longer holds 11211.
            self.assertEqual(h.sh("readlink /etc/systemd/system/memcached.service").stdout.strip(), "/dev/null")
            self.assertEqual(h.sh("systemctl is-enabled rend").stdout.strip(), "enabled")
            self.assertEqual(h.sh("dpkg-query -W -f='${Version}' rend").stdout, self.version)
        FleetTest.converged = True

    def test_2_second_run_changes_nothing(self):
        rc, out, recap = self.play()
        self.assertEqual(rc, 0, out[-6000:])
        self.assertEqual({h: recap[h]["changed"] for h in HOSTS}, {h: 0 for h in HOSTS}, out[-6000:])

    def test_3_check_diff_changes_nothing(self):
        rc, out, recap = self.play(args=["--check", "--diff"])
        self.assertEqual(rc, 0, out[-6000:])
        self.assertEqual({h: recap[h]["changed"] for h in HOSTS}, {h: 0 for h in HOSTS}, out[-6000:])

    def test_4_bad_config_is_refused_and_rend_untouched(self):
        pids = {h: self.fleet.hosts[h].supervisor_pid() for h in HOSTS}
        files = {h: self.fleet.hosts[h].sh("sha256sum /etc/rend/rend.json").stdout for h in HOSTS}
        for args in (["--check"], []):
            rc, out, recap = self.play(extra_vars={"rend_config": {"workers": 65}}, args=args)
            self.assertNotEqual(rc, 0)
            self.assertIn("rend refuses the configuration", out)
            self.assertIn("workers", out)
            self.assertEqual({h: recap[h]["failed"] for h in HOSTS}, {h: 1 for h in HOSTS}, args)
        for h in HOSTS:
            self.assertEqual(self.fleet.hosts[h].supervisor_pid(), pids[h])
            self.assertEqual(self.fleet.hosts[h].sh("sha256sum /etc/rend/rend.json").stdout, files[h])

    def test_5_reloadable_change_reloads_in_place(self):
        pids = {h: self.fleet.hosts[h].supervisor_pid() for h in HOSTS}
        with self.fleet.start_clients() as clients:
            rc, out, recap = self.play(extra_vars={"rend_config": {"workers": 3}})
        self.assertEqual(rc, 0, out[-6000:])
        for h in HOSTS:
            self.assertEqual(self.fleet.hosts[h].supervisor_pid(), pids[h], f"{h} was reloaded, not restarted")
            self.assertEqual(len(self.fleet.hosts[h].rend_status()["workers"]), 3)
        self.assertEqual(self.rolled_host_by_host(out), [])
        self.assert_clean_clients(clients)
        FleetTest.config = {"workers": 3}

    def test_5b_a_replaced_memcached_restarts_warm_without_a_restart_of_rend(self):
        # A memcached package upgrade renames a new binary over the running one: rend restarts
        # memcached alone, warm, and L1 keeps what it held.
        host = self.fleet.hosts["h1"]
        self.assertIn(b"STORED", host.memcached(b"set kept 0 0 4\r\nkept\r\n"))
        host.sh("cp -p /usr/bin/memcached /usr/bin/memcached.new && mv /usr/bin/memcached.new /usr/bin/memcached")
        self.assertEqual(host.rend_status()["supervisor"]["replaced_executables"], ["memcached"])
        pid, memcached_pid = host.supervisor_pid(), host.rend_status()["memcached"]["pid"]
        with self.fleet.start_clients() as clients:
            rc, out, recap = self.play(extra_vars={"rend_config": FleetTest.config}, args=("--limit", "h1"))
        self.assertEqual(rc, 0, out[-6000:])
        self.assertIn("restart memcached, keeping its items", out)
        status = host.rend_status()
        self.assertEqual(host.supervisor_pid(), pid, "rend itself was not restarted")
        self.assertNotEqual(status["memcached"]["pid"], memcached_pid)
        self.assertEqual(status["supervisor"]["replaced_executables"], [])
        probe = ("import socket;s=socket.socket(socket.AF_UNIX);s.connect('/run/rend/memcached.sock');"
                 "s.sendall(b'get kept\\r\\n');b=b''\n"
                 "while not b.endswith(b'END\\r\\n'): b+=s.recv(4096)\n"
                 "print(b.endswith(b'kept\\r\\nEND\\r\\n'))")
        self.assertEqual(host.sh(f"python3 -c \"{probe}\"").stdout.strip(), "True",
                         "memcached came back with its items")
        self.assert_clean_clients(clients)

    def test_5c_a_restart_of_rend_keeps_open_connections(self):
        # systemctl restart: rend keeps its clients' connections in systemd's file descriptor store
        # and the next rend serves them; the verifying client, which retries a broken request once
        # on a new connection, has nothing to retry.
        host = self.fleet.hosts["h1"]
        pid = host.supervisor_pid()
        with self.fleet.start_clients() as clients:
            time.sleep(0.5)
            started = time.monotonic()
            host.sh("systemctl restart rend")
            print(f"  systemctl restart rend: {time.monotonic() - started:.1f} s", flush=True)
            time.sleep(1.0)
        self.assertNotEqual(host.supervisor_pid(), pid)
        self.assert_clean_clients(clients)
        self.assertEqual(clients.counts["h1"]["retried"], 0, clients.counts)
        log = host.sh("journalctl -u rend -n 200 --no-pager").stdout
        self.assertRegex(log, r"([1-9]\d*) of \1 client connections kept by systemd since the last stop handed to")

    def rolled_host_by_host(self, out):
        """Each restart task of the run restarted one host, and each host once."""
        restarted = []
        for block in out.split("TASK [rend : Service | restart]")[1:]:
            block = block.split("TASK [")[0]
            changed = [line.split("[")[1].split("]")[0] for line in block.splitlines() if line.startswith("changed:")]
            self.assertLessEqual(len(changed), 1, block)
            restarted += changed
        return restarted

    def test_6_new_release_upgrades_each_host_in_place(self):
        # A new release alone needs no restart: the rolling play takes each host in turn through
        # rendctl upgrade (same supervisor, workers rolled with their clients handed over) and
        # restart-l2, undrained, and reloads the reloadable change of the same run on top
        # (memcached.memory_mb: memcached restarts warm). No client retries anything.
        pids = {h: self.fleet.hosts[h].supervisor_pid() for h in HOSTS}
        config = dict(FleetTest.config, memcached={"memory_mb": 512})
        with self.fleet.start_clients() as clients:
            rc, out, recap = self.play(package=self.next_release, extra_vars={"rend_config": config})
        self.assertEqual(rc, 0, out[-6000:])
        self.assertEqual(out.count("TASK [rend : Service | upgrade in place]"), len(HOSTS), "one host at a time")
        self.assertEqual(self.rolled_host_by_host(out), [], "no host was restarted")
        for h in HOSTS:
            host = self.fleet.hosts[h]
            self.assertEqual(host.sh("dpkg-query -W -f='${Version}' rend").stdout, self.version + "+fleet2")
            self.assertEqual(host.supervisor_pid(), pids[h], f"{h}: upgraded in place, not restarted")
            self.assertEqual(host.rend_status()["supervisor"]["replaced_executables"], [])
            self.assertIn("-m 512", host.sh("ps -o args= -C memcached").stdout)
        self.assertEqual(sum(c["drains"] for c in clients.counts.values()), 0)
        self.assert_clean_clients(clients)
        self.assertEqual(sum(c["retried"] for c in clients.counts.values()), 0, clients.counts)
        FleetTest.config = config

    def test_7_restart_only_change_fails_on_the_second_host_rolls_it_back_and_stops(self):
        # The new batch port is taken on h2: its rend cannot start on the new configuration.
        taken = 11213
        holder = subprocess.Popen(self.fleet.hosts["h2"].in_netns(
            ["python3", "-c", f"import socket,time;s=socket.socket();s.bind(('127.0.0.1',{taken}));"
                              "s.listen();print('held',flush=True);time.sleep(600)"]),
            stdout=subprocess.PIPE, text=True)
        self.addCleanup(holder.kill)
        self.assertEqual(holder.stdout.readline().strip(), "held")
        pids = {h: self.fleet.hosts[h].supervisor_pid() for h in HOSTS}
        config = dict(FleetTest.config, listen={"batch_port": taken})
        with self.fleet.start_clients() as clients:  # rolling.yml itself this time (site.yml ends with it)
            rc, out, recap = self.play("rolling.yml", package=self.next_release, extra_vars={"rend_config": config})
        self.assertNotEqual(rc, 0)
        # h1 took the restart-only change alone: restarted onto it.
        self.assertEqual(self.host_config("h1")["listen"]["batch_port"], taken)
        self.assertNotEqual(self.fleet.hosts["h1"].supervisor_pid(), pids["h1"])
        self.assertIn(b"STORED", self.fleet.hosts["h1"].memcached(b"set b 0 0 1\r\nb\r\n", port=taken))
        self.assertEqual((recap["h2"]["failed"], recap["h2"]["rescued"]), (1, 1), out[-6000:])
        self.assertIn("rolled back", out)
        self.assertEqual(self.host_config("h2")["listen"]["batch_port"], 11212)
        self.assert_serving("h2")
        self.assertNotIn("h3", recap, "the play stopped before the third host")
        self.assertEqual([clients.counts[h]["drains"] for h in HOSTS], [1, 1, 0], "restarts are drained")
        self.assertEqual(self.fleet.hosts["h3"].supervisor_pid(), pids["h3"])
        self.assertEqual(self.host_config("h3")["listen"]["batch_port"], 11212)
        self.assert_clean_clients(clients)

    def test_8_rollback_playbook_puts_back_the_previous_configuration(self):
        # h1 took test_7's batch port; rollback.yml gives it back the configuration before that.
        h1 = self.fleet.hosts["h1"]
        pid = h1.supervisor_pid()
        with self.fleet.start_clients() as clients:
            rc, out, recap = self.play("rollback.yml", package=self.next_release, args=["--limit", "h1"])
        self.assertEqual(rc, 0, out[-6000:])
        self.assertEqual(self.host_config("h1")["listen"]["batch_port"], 11212)
        self.assertNotEqual(h1.supervisor_pid(), pid)
        self.assert_serving("h1")
        self.assertEqual([clients.counts[h]["drains"] for h in HOSTS], [1, 0, 0])
        self.assert_clean_clients(clients)

    def test_9_reboot_brings_rend_back_with_its_l2_data(self):
        h3 = self.fleet.hosts["h3"]
        keys = [b"reboot-%d" % i for i in range(50)]
        sets = b"".join(b"set %s 0 0 %d noreply\r\n%s\r\n" % (k, len(k), k) for k in keys)
        everything = b"".join(b"VALUE %s 0 %d\r\n%s\r\n" % (k, len(k), k) for k in keys) + b"END\r\n"
        self.assertEqual(h3.memcached(sets + b"get " + b" ".join(keys) + b"\r\n"), everything)
        started = time.monotonic()
        h3.poweroff()
        h3.boot()
        fleet.wait_until(lambda: h3.rend_status() is not None, 60, "rend on the rebooted h3")
        print(f"  h3 rebooted and serving in {time.monotonic() - started:.1f} s", flush=True)
        self.assert_serving("h3")
        # memcached starts empty: these come from rend-l2's RocksDB.
        self.assertEqual(h3.memcached(b"get " + b" ".join(keys) + b"\r\n"), everything)


if __name__ == "__main__":
    unittest.main()
