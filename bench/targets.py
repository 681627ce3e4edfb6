"""The servers under test. Each target owns one memcached of its own, so no
target's cache state or memcached CPU leaks into another's numbers.

A target knows how to start itself, which address clients use, which
address reaches its memcached directly (to flush it), and which processes
count as "the proxy" for CPU accounting.
"""

import json
import os
import re
import shutil
import subprocess

from procs import BenchError, tree_pids, wait_for_path, wait_until_ready, free_port

START_TIMEOUT_S = 15.0


def memcached_argv(listen_args):
    """The same memcached for every target: 1 GiB, 4 threads, no UDP."""
    argv = ["memcached", "-m", "1024", "-t", "4", "-U", "0"] + listen_args
    if os.geteuid() == 0:
        argv += ["-u", "root"]  # memcached refuses to run as root without it
    return argv


class Target:
    name = "?"
    kind = "?"

    def __init__(self, workdir, procs):
        self.dir = os.path.join(workdir, self.key)
        os.makedirs(self.dir, exist_ok=True)
        self.procs = procs
        self.memcached = None     # Popen of this target's memcached
        self.proxy = None         # Popen of the proxy (None for direct memcached)
        self.address = None       # host:port the load generator talks to
        self.backend = None       # address of memcached itself, for flush_all
        self.commands = []        # command lines, for the report
        self.started_pids = None  # proxy processes right after start

    # --- helpers shared by the subclasses

    def _start_memcached_unix(self):
        """memcached on a unix socket, as rend uses it in production."""
        sock = os.path.join(self.dir, "memcached.sock")
        argv = memcached_argv(["-s", sock])
        self.memcached = self.procs.start(f"{self.key}-memcached", argv,
                                          os.path.join(self.dir, "memcached.log"))
        self.commands.append(" ".join(argv))
        wait_for_path(sock, self.memcached, START_TIMEOUT_S, f"{self.name}: memcached")
        wait_until_ready(sock, self.memcached, START_TIMEOUT_S, f"{self.name}: memcached")
        self.backend = sock
        return sock

    # --- CPU accounting

    def proxy_pids(self):
        """Processes whose CPU is "the proxy's". For direct memcached, memcached."""
        if self.proxy is None:
            return [self.memcached.pid]
        return tree_pids(self.proxy.pid)

    def remember_pids(self):
        """Called once the target is up: the processes it must keep all along."""
        self.started_pids = set(self.proxy_pids())

    def check_alive(self):
        """Fail the target if anything died. A rend worker that crashed and
        was restarted by the supervisor still counts: a bench must not
        quietly measure a proxy that crashes under load."""
        for what, proc in (("memcached", self.memcached), ("proxy", self.proxy)):
            if proc is not None and proc.poll() is not None:
                raise BenchError(f"{self.name}: {what} exited with status {proc.returncode}")
        now = set(self.proxy_pids())
        if self.started_pids is not None and now != self.started_pids:
            raise BenchError(f"{self.name}: processes changed since start "
                             f"({sorted(self.started_pids)} -> {sorted(now)}); a crash and restart?")


class DirectMemcached(Target):
    key = "memcached"
    name = "memcached (direct)"
    kind = "baseline"

    def start(self):
        port = free_port()
        argv = memcached_argv(["-l", "127.0.0.1", "-p", str(port)])
        self.memcached = self.procs.start("memcached", argv,
                                          os.path.join(self.dir, "memcached.log"))
        self.commands.append(" ".join(argv))
        self.address = self.backend = f"127.0.0.1:{port}"
        wait_until_ready(self.address, self.memcached, START_TIMEOUT_S, self.name)


class Nutcracker(Target):
    """twemproxy, the usual memcached proxy; the yardstick for rend.

    It reaches its memcached over a unix socket, like rend, so the two
    proxies differ only in themselves and not in the backend transport.
    """
    key = "nutcracker"
    name = "nutcracker"
    kind = "proxy"

    def start(self):
        if shutil.which("nutcracker") is None:
            raise BenchError("nutcracker is not installed (Debian package nutcracker)")
        sock = self._start_memcached_unix()
        port, stats_port = free_port(), free_port()
        conf = os.path.join(self.dir, "conf.yml")
        with open(conf, "w") as f:
            f.write("bench:\n"
                    f"  listen: 127.0.0.1:{port}\n"
                    "  distribution: ketama\n"
                    "  hash: fnv1a_64\n"
                    "  auto_eject_hosts: false\n"
                    "  servers:\n"
                    f"    - {sock}:1\n")
        # -a/-s: keep the stats port on loopback and off the default 22222,
        # which another nutcracker on the host may hold.
        argv = ["nutcracker", "-c", conf, "-a", "127.0.0.1", "-s", str(stats_port),
                "-p", os.path.join(self.dir, "nutcracker.pid"),
                "-o", os.path.join(self.dir, "nutcracker.log")]
        self.proxy = self.procs.start("nutcracker", argv, os.path.join(self.dir, "stdout.log"))
        self.commands.append(" ".join(argv))
        self.address = f"127.0.0.1:{port}"
        wait_until_ready(self.address, self.proxy, START_TIMEOUT_S, self.name)


class Rend(Target):
    """rend in l1only mode. We run memcached ourselves (memcached.enabled
    false) so that its CPU is never mixed into the supervisor's tree."""
    kind = "proxy"

    def __init__(self, workdir, procs, build_dir, workers):
        self.workers = workers
        self.key = f"rend-w{workers}"
        self.name = f"rend l1only, workers={workers}"
        self.build_dir = build_dir
        super().__init__(workdir, procs)

    def start(self):
        binary = os.path.join(self.build_dir, "supervisor", "rend")
        if not os.access(binary, os.X_OK):
            raise BenchError(f"{binary} is missing; build rend first")
        sock = self._start_memcached_unix()
        port = free_port()
        config = self._config(binary, sock, port)
        conf = os.path.join(self.dir, "rend.json")
        with open(conf, "w") as f:
            json.dump(config, f, indent=2)
        argv = [binary, "--config", conf]
        # cwd = our temp dir: any default relative path (run/, data/) lands
        # there and not in the repository another rend may be using.
        self.proxy = self.procs.start(self.key, argv, os.path.join(self.dir, "rend.log"),
                                      cwd=self.dir)
        self.commands.append(" ".join(argv) + "   # " + json.dumps(config))
        self.address = f"127.0.0.1:{port}"
        wait_until_ready(self.address, self.proxy, START_TIMEOUT_S, self.name)
        self._check_worker_count()

    def _config(self, binary, memcached_sock, port):
        """The brief's l1only config, plus isolation from other rends on the host.

        Newer rend builds have a control socket and a Prometheus endpoint
        with fixed defaults (run/rend.ctl, 127.0.0.1:11299): two rends with
        the defaults would fight over them. Only set the keys this build
        knows (it rejects unknown keys), as listed by --print-options.
        """
        config = {
            "workers": self.workers,
            "run_dir": os.path.join(self.dir, "run"),
            "listen": {"host": "127.0.0.1", "port": port},
            "l1": {"address": memcached_sock, "connections": 2},
            "memcached": {"enabled": False},
        }
        known = rend_option_keys(binary)
        if "control.socket" in known:
            config["control"] = {"socket": os.path.join(self.dir, "run", "rend.ctl")}
        if "metrics.listen" in known:
            # Off: nobody scrapes it here. Counters are still recorded in
            # shared memory (metrics.enabled keeps its default), as in production.
            config["metrics"] = {"listen": ""}
        if "listen.batch_port" in known:
            config["listen"]["batch_port"] = 0  # only used with L2; never bind 11212
        return config

    def _check_worker_count(self):
        """The CPU sum must cover every worker: make sure they are all there."""
        found = len(self.proxy_pids()) - 1  # minus the supervisor
        if found != self.workers:
            raise BenchError(f"{self.name}: expected {self.workers} rend-worker processes, found {found}")


def rend_option_keys(binary):
    """Option names from `rend --print-options` (a Markdown table: | `key` | ...)."""
    try:
        out = subprocess.run([binary, "--print-options"], capture_output=True, text=True,
                             timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired) as e:
        raise BenchError(f"{binary} --print-options failed: {e}") from None
    return set(re.findall(r"^\| `([^`]+)`", out, re.MULTILINE))


def all_targets(workdir, procs, build_dir):
    """Baseline first: every other row is expressed relative to it."""
    return [
        DirectMemcached(workdir, procs),
        Nutcracker(workdir, procs),
        Rend(workdir, procs, build_dir, workers=1),
        Rend(workdir, procs, build_dir, workers=2),
    ]
