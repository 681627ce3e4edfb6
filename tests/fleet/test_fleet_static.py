"""deploy/ansible without hosts: ansible-lint's production profile finds nothing, every playbook
passes --syntax-check, the role's meta/argument_specs.yml documents exactly the variables of
defaults/main.yml with the same defaults, and the Python the role runs on hosts compiles. (The
units' systemd-analyze verify and security checks are test_systemd_units.)"""
import os
import shutil
import subprocess
import unittest

import yaml

ANSIBLE_DIR = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "deploy",
                                            "ansible"))
ROLE = os.path.join(ANSIBLE_DIR, "roles", "rend")
PLAYBOOKS = ["site.yml", "rolling.yml", "rollback.yml"]


def load(*path):
    with open(os.path.join(ROLE, *path)) as f:
        return yaml.safe_load(f)


class AnsibleStaticTest(unittest.TestCase):
    def ansible(self, *argv):
        assert shutil.which(argv[0]), f"{argv[0]} is not installed (make test installs it)"
        env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ANSIBLE_DIR, "ansible.cfg"), ANSIBLE_NOCOLOR="1",
                   NO_COLOR="1", HOME=os.environ.get("HOME", "/root"))
        return subprocess.run(argv, cwd=ANSIBLE_DIR, capture_output=True, text=True, timeout=300, env=env)

    def test_ansible_lint_production_profile(self):
        out = self.ansible("ansible-lint", "--offline", "--profile", "production", "--nocolor")
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertIn("Passed with production profile", out.stdout + out.stderr)

    def test_playbooks_pass_syntax_check(self):
        for playbook in PLAYBOOKS:
            out = self.ansible("ansible-playbook", "--syntax-check", playbook)
            self.assertEqual(out.returncode, 0, f"{playbook}: {out.stdout}{out.stderr}")

    def test_argument_specs_and_defaults_agree(self):
        defaults = load("defaults", "main.yml")
        options = load("meta", "argument_specs.yml")["argument_specs"]["main"]["options"]
        self.assertEqual(sorted(options), sorted(defaults), "documented variables vs defaults/main.yml")
        for name, spec in options.items():
            self.assertEqual(spec.get("default"), defaults[name], f"{name}: default differs")
            self.assertTrue(spec.get("description"), f"{name}: no description")
            self.assertIn("type", spec, name)

    def test_every_rollback_option_is_a_main_option(self):
        specs = load("meta", "argument_specs.yml")["argument_specs"]
        for name in specs["rollback"]["options"]:
            self.assertIn(name, specs["main"]["options"])

    def test_host_scripts_compile(self):
        for script in ("host_state.py", "verify.py"):
            with open(os.path.join(ROLE, "files", script)) as f:
                compile(f.read(), script, "exec")


if __name__ == "__main__":
    unittest.main()
