"""rend's systemd units (deploy/systemd): `systemd-analyze verify` finds nothing to say about them,
`systemd-analyze security` rates them 2.5 or lower, and their stop timeout leaves the supervisor
its own graceful stop. Both units are checked: rend.service and the rend@.service made from it.

systemd-analyze reads them from a scratch root holding the units, systemd's own units (the targets
they refer to) and rend's binaries where the units run them from (/usr/bin)."""
import os
import re
import shutil
import subprocess
import unittest

from rendtest import REND, RENDCTL, ProcessTest

UNITS = os.path.join(os.path.dirname(__file__), "..", "..", "deploy", "systemd")
ANALYZE = shutil.which("systemd-analyze")
MAX_EXPOSURE = 2.5


@unittest.skipUnless(ANALYZE and os.path.isdir("/usr/lib/systemd/system"), "systemd is not installed")
class SystemdUnitTest(ProcessTest):
    def setUp(self):
        super().setUp()
        self.root = os.path.join(self.tmp, "root")
        system = os.path.join(self.root, "etc", "systemd", "system")
        os.makedirs(system)
        os.makedirs(os.path.join(self.root, "usr", "bin"))
        shutil.copytree("/usr/lib/systemd/system", os.path.join(self.root, "usr", "lib", "systemd", "system"),
                        symlinks=True)
        for binary in (REND, RENDCTL):
            shutil.copy(binary, os.path.join(self.root, "usr", "bin"))
        shutil.copy(os.path.join(UNITS, "rend.service"), system)
        shutil.copy(os.path.join(UNITS, "rend.socket"), system)
        with open(os.path.join(system, "rend@.service"), "w") as f:
            subprocess.run([os.path.join(UNITS, "make-instance-unit.sh"), os.path.join(UNITS, "rend.service")],
                           stdout=f, check=True)
        self.units = ["rend.service", "rend@main.service", "rend.socket"]

    def analyze(self, *args):
        return subprocess.run([ANALYZE, *args, f"--root={self.root}"], capture_output=True, text=True, timeout=60)

    def test_verify_has_nothing_to_say(self):
        for unit in self.units:
            out = self.analyze("verify", unit)
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertEqual(out.stdout + out.stderr, "", f"{unit}: every warning is a finding")

    def test_verify_would_catch_a_missing_binary(self):
        os.unlink(os.path.join(self.root, "usr", "bin", "rend"))
        self.assertNotEqual(self.analyze("verify", "rend.service").returncode, 0)

    def test_security_exposure(self):
        for unit in self.units:
            if not unit.endswith(".service"):
                continue  # a socket unit runs nothing
            out = self.analyze("security", "--offline=true", unit)
            m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", out.stdout)
            self.assertIsNotNone(m, out.stdout[-2000:] + out.stderr)
            score = float(m.group(1))
            print(f"\n{unit}: systemd-analyze security exposure {score} (at most {MAX_EXPOSURE})")
            self.assertLessEqual(score, MAX_EXPOSURE, out.stdout)

    def test_stop_timeout_above_the_supervisors_own(self):
        with open(os.path.join(UNITS, "rend.service")) as f:
            unit = f.read()
        stop_s = int(re.search(r"^TimeoutStopSec=(\d+)$", unit, re.M).group(1))
        options = subprocess.run([REND, "--print-options"], capture_output=True, text=True, check=True).stdout
        graceful_ms = int(re.search(r"`supervisor\.stop_timeout_ms` \| `(\d+)`", options).group(1))
        self.assertGreater(stop_s * 1000, graceful_ms + 5000, "systemd must not kill a stop still draining")
        self.assertIn("KillMode=mixed", unit)
        self.assertIn("Type=notify", unit)
        self.assertIn("RestartPreventExitStatus=78", unit)  # common/exit_codes.h: kExitBadConfig
