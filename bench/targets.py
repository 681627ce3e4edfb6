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

from procs import BenchError, Skip, tree_pids, wait_for_path, wait_until_ready, free_port

START_TIMEOUT_S = 15.0
DEFAULT_MEMORY_MB = 1024


def memcached_argv(listen_args, memory_mb=DEFAULT_MEMORY_MB, extra=()):
    """The same memcached for every target: 1 GiB, 4 threads, no UDP
    (the extstore comparison gives it less RAM and a flash file)."""
    argv = ["memcached", "-m", str(memory_mb), "-t", "4", "-U", "0"] + listen_args + list(extra)
    if os.geteuid() == 0:
        argv += ["-u", "root"]  # memcached refuses to run as root without it
    return argv


class Target:
    name = "?"
    short = None  # label in the plot; the key when unset
    kind = "?"
    memory_mb = DEFAULT_MEMORY_MB
    reps = None  # measured memcaslap runs; None = --reps

    def __init__(self, workdir, procs, key=None, name=None):
        # key/name: a second instance of a target class in one bench run
        # (its own directory under workdir, its own row).
        self.key = key or self.key
        self.name = name or self.name
        self.short = self.short or self.key
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
        argv = memcached_argv(["-s", sock], self.memory_mb)
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

    def l2_pids(self):
        """rend-l2, when the target has one (its CPU is reported apart from the proxy's)."""
        return []

    def all_pids(self):
        return list(self.proxy_pids()) + list(self.l2_pids())

    def processes(self):
        """The Popen objects this target started (to stop just this target)."""
        return [p for p in (self.proxy, self.memcached) if p is not None]

    def remember_pids(self):
        """Called once the target is up: the processes it must keep all along."""
        self.started_pids = set(self.all_pids())

    def check_alive(self):
        """Fail the target if anything died. A rend worker that crashed and
        was restarted by the supervisor still counts: a bench must not
        quietly measure a proxy that crashes under load."""
        for what, proc in (("memcached", self.memcached), ("proxy", self.proxy)):
            if proc is not None and proc.poll() is not None:
                raise BenchError(f"{self.name}: {what} exited with status {proc.returncode}")
        now = set(self.all_pids())
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
    """rend, 1 or more workers. We run memcached ourselves (memcached.enabled
    false) so that its CPU is never mixed into the supervisor's tree.

    l1only by default; with l2=True rend also starts and supervises its own
    rend-l2 (l1l2 on the main port, l1l2batch on a batch port). metrics=False
    turns off `metrics.enabled` (the per-request counters and histograms).
    wrapper is an argv prefix for rend (the metrics-ir section runs it under
    valgrind --trace-children=yes, which follows rend into its workers).
    """
    kind = "proxy"

    def __init__(self, workdir, procs, build_dir, workers, metrics=True, l2=False,
                 memory_mb=DEFAULT_MEMORY_MB, l2_settings=None, key=None, name=None,
                 wrapper=None, start_timeout_s=START_TIMEOUT_S):
        self.workers = workers
        self.wrapper = list(wrapper or [])  # argv prefix, e.g. valgrind (it follows rend into its workers)
        self.start_timeout_s = start_timeout_s
        self.metrics = metrics
        self.l2 = l2
        self.memory_mb = memory_mb
        self.l2_settings = dict(l2_settings or {})
        mode = "l1l2" if l2 else "l1only"
        self.key = key or f"rend-w{workers}"
        self.name = name or f"rend {mode}, workers={workers}"
        self.short = f"rend {mode} w{workers}"
        self.build_dir = build_dir
        self.batch_address = None
        super().__init__(workdir, procs)

    def start(self):
        binary = os.path.join(self.build_dir, "supervisor", "rend")
        if not os.access(binary, os.X_OK):
            raise BenchError(f"{binary} is missing; build rend first")
        known = rend_option_keys(binary)
        if not self.metrics and "metrics.enabled" not in known:
            raise Skip(f"{self.name}: this rend has no metrics.enabled option")
        if self.l2:
            if "l2.enabled" not in known:
                raise Skip(f"{self.name}: this rend has no L2 tier (no l2.enabled option)")
            l2_binary = os.path.join(self.build_dir, "l2", "rend-l2")
            if not os.access(l2_binary, os.X_OK):
                raise Skip(f"{self.name}: {l2_binary} is missing (build the rend-l2 target)")
        sock = self._start_memcached_unix()
        port = free_port()
        config = self._config(binary, known, sock, port)
        conf = os.path.join(self.dir, "rend.json")
        with open(conf, "w") as f:
            json.dump(config, f, indent=2)
        argv = self.wrapper + [binary, "--config", conf]
        # cwd = our temp dir: any default relative path (run/, data/) lands
        # there and not in the repository another rend may be using.
        self.proxy = self.procs.start(self.key, argv, os.path.join(self.dir, "rend.log"),
                                      cwd=self.dir)
        self.commands.append(" ".join(argv) + "   # " + json.dumps(config))
        self.address = f"127.0.0.1:{port}"
        wait_until_ready(self.address, self.proxy, self.start_timeout_s, self.name)
        if self.batch_address:
            wait_until_ready(self.batch_address, self.proxy, self.start_timeout_s,
                             f"{self.name} batch port")
        self._check_worker_count()

    def _config(self, binary, known, memcached_sock, port):
        """The brief's l1only config, plus isolation from other rends on the host.

        Newer rend builds have a control socket and a Prometheus endpoint
        with fixed defaults (run/rend.ctl, 127.0.0.1:11299): two rends with
        the defaults would fight over them. Only set the keys this build
        knows (it rejects unknown keys), as listed by --print-options.
        """
        run_dir = os.path.join(self.dir, "run")
        config = {
            "workers": self.workers,
            "run_dir": run_dir,
            "listen": {"host": "127.0.0.1", "port": port},
            "l1": {"address": memcached_sock, "connections": 2},
            "memcached": {"enabled": False},
        }
        if "control.socket" in known:
            config["control"] = {"socket": os.path.join(run_dir, "rend.ctl")}
        if "metrics.listen" in known:
            # Off: nobody scrapes it here. Counters are still recorded in
            # shared memory (metrics.enabled), as in production.
            config["metrics"] = {"listen": ""}
        if "metrics.enabled" in known:
            config.setdefault("metrics", {})["enabled"] = self.metrics
        if self.l2:
            batch_port = free_port()
            config["listen"]["batch_port"] = batch_port
            self.batch_address = f"127.0.0.1:{batch_port}"
            config["l2"] = {"enabled": True, "supervised": True,
                            "address": os.path.join(run_dir, "rend-l2.sock"),
                            "data_dir": os.path.join(self.dir, "l2-data"),
                            "binary": os.path.join(self.build_dir, "l2", "rend-l2")}
            config["l2"].update(self.l2_settings)
        elif "listen.batch_port" in known:
            config["listen"]["batch_port"] = 0  # only used with L2; never bind 11212
        return config

    def proxy_pids(self):
        """Supervisor + workers; never memcached nor rend-l2 (reported apart)."""
        return tree_pids(self.proxy.pid, exclude_comm=("memcached", "rend-l2"))

    def l2_pids(self):
        if not self.l2 or self.proxy is None:
            return []
        return [p for p in tree_pids(self.proxy.pid, exclude_comm=())
                if _comm_or_none(p) == "rend-l2"]

    def _check_worker_count(self):
        """The CPU sum must cover every worker: make sure they are all there."""
        found = len(self.proxy_pids()) - 1  # minus the supervisor
        if found != self.workers:
            raise BenchError(f"{self.name}: expected {self.workers} rend-worker processes, found {found}")
        if self.l2 and len(self.l2_pids()) != 1:
            raise BenchError(f"{self.name}: expected one rend-l2 process, found {len(self.l2_pids())}")


# extstore options that let it keep every key of the comparison's working set:
# flush items to flash as soon as they are written (ext_item_age=0), with two IO
# threads that sleep at most 1 ms (the default 1 s lets a fast fill outrun them,
# and memcached evicts what is not yet on flash), and hold half of the RAM free
# for the small headers that index flash items (slab_automove_freeratio).
# Found by trying options by hand; with fewer of them it still loses keys.
EXTSTORE_TUNING = "ext_item_age=0,ext_threads=2,ext_max_sleep=1000,slab_automove_freeratio=0.5"
EXTSTORE_TUNED_FILL_RATE = 20000  # sets/s


class Extstore(Target):
    """memcached with its flash tier, extstore (-o ext_path=FILE:SIZE), on TCP.
    tuned=True adds EXTSTORE_TUNING; otherwise every ext_* option is at its default."""
    kind = "baseline"

    def __init__(self, workdir, procs, memory_mb, flash_mb, tuned=False):
        self.memory_mb = memory_mb
        self.flash_mb = flash_mb
        self.tuning = EXTSTORE_TUNING if tuned else None
        # Even tuned, a fill at full speed can outrun the flash writer on a busy
        # disk, and memcached evicts what is not yet on flash; paced near rend's
        # own fill rate it keeps every key.
        self.fill_rate = EXTSTORE_TUNED_FILL_RATE if tuned else None
        self.key = "extstore-tuned" if tuned else "extstore"
        self.name = f"memcached -m {memory_mb} + extstore {flash_mb} MiB" + (
            f", tuned ({self.tuning})" if tuned else "")
        self.short = f"extstore{' tuned' if tuned else ''}, -m {memory_mb}"
        super().__init__(workdir, procs)

    def start(self):
        if not extstore_supported():
            raise Skip("this memcached has no extstore (no ext_path in memcached -h)")
        path = os.path.join(self.dir, "extstore.data")
        port = free_port()
        argv = memcached_argv(["-l", "127.0.0.1", "-p", str(port)], self.memory_mb,
                              ["-o", f"ext_path={path}:{self.flash_mb}m"
                                     + (f",{self.tuning}" if self.tuning else "")])
        self.memcached = self.procs.start("extstore-memcached", argv,
                                          os.path.join(self.dir, "memcached.log"))
        self.commands.append(" ".join(argv))
        self.address = self.backend = f"127.0.0.1:{port}"
        wait_until_ready(self.address, self.memcached, START_TIMEOUT_S, self.name)


def extstore_supported():
    try:
        out = subprocess.run(["memcached", "-h"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "ext_path" in out.stdout + out.stderr


def _comm_or_none(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return None


def rend_option_keys(binary):
    """Option names from `rend --print-options` (a Markdown table: | `key` | ...)."""
    try:
        out = subprocess.run([binary, "--print-options"], capture_output=True, text=True,
                             timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired) as e:
        raise BenchError(f"{binary} --print-options failed: {e}") from None
    return set(re.findall(r"^\| `([^`]+)`", out, re.MULTILINE))


# Keys of the targets in the main summary table (the original comparison).
BASELINE_KEYS = ("memcached", "nutcracker", "rend-w1", "rend-w2")


def all_targets(workdir, procs, build_dir, metrics_reps=None):
    """Baseline first: every other row is expressed relative to it.

    The last two are measured in the same interleaved memcaslap rounds but
    reported in their own sections: rend-w1 with metrics off (against
    rend-w1, metrics on) and rend with L2 (L1-hit gets, against rend-w1).
    """
    w1 = Rend(workdir, procs, build_dir, workers=1)
    nometrics = Rend(workdir, procs, build_dir, workers=1, metrics=False, key="rend-w1-nometrics",
                     name="rend l1only, workers=1, metrics.enabled=false")
    w1.reps = nometrics.reps = metrics_reps
    return [
        DirectMemcached(workdir, procs),
        Nutcracker(workdir, procs),
        w1,
        Rend(workdir, procs, build_dir, workers=2),
        nometrics,
        Rend(workdir, procs, build_dir, workers=1, l2=True, key="rend-l1l2",
             name="rend l1l2 (L2 enabled), workers=1"),
    ]
