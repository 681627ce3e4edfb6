"""What the rend role needs to know about a host, read in one go (every task costs a round trip):
the installed release, the unit, the running supervisor's status, the configuration file (its text
too, for a snapshot) and the candidate one (both checked and hashed by rend), descriptor limits,
the previous release, and the release file. Prints one JSON object. Usage: python3 - PARAMS_JSON, candidate text base64 in REND_CANDIDATE
(the role feeds this file on stdin)."""
import base64
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile

params = json.loads(sys.argv[1])
out = {}
candidate_text = base64.b64decode(os.environ["REND_CANDIDATE"])


def run(*argv, stdin=None):
    try:
        p = subprocess.run(argv, capture_output=True, text=True, input=stdin, timeout=60)
        return p.returncode, p.stdout.strip(), p.stderr.strip()
    except FileNotFoundError as e:
        return 127, "", str(e)


def check(path):
    """rend --check-config --json on a file: {ok, config_hash, restart_hash} or {ok: false, error}."""
    rc, stdout, stderr = run("rend", "--check-config", path, "--json")
    try:
        return json.loads(stdout)
    except ValueError:
        return {"ok": False, "error": (stdout + " " + stderr).strip() or f"rend exited with {rc}"}


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def sha1(path):
    content = read(path)
    return hashlib.sha1(content).hexdigest() if content is not None else ""


with open("/etc/os-release") as f:
    out["os"] = dict(re.findall(r'^(\w+)="?([^"\n]*)"?$', f.read(), re.M))
with open("/proc/1/comm") as f:
    out["init"] = f.read().strip()

rc, version, _ = run("dpkg-query", "--show", "--showformat=${Version}", "rend")
out["installed_version"] = version if rc == 0 else ""
out["active"] = run("systemctl", "is-active", params["unit"])[1]
out["enabled"] = run("systemctl", "is-enabled", params["unit"])[1]

out["status"] = None
if out["installed_version"] and out["active"] == "active":
    rc, stdout, _ = run("rendctl", "--config", params["config_file"], "--json", "status")
    if rc == 0:
        out["status"] = json.loads(stdout)

config_text = read(params["config_file"])
out["file"] = {"exists": config_text is not None, "sha1": sha1(params["config_file"]),
               "text": config_text.decode(errors="replace") if config_text is not None else ""}
out["candidate"] = {"sha1": hashlib.sha1(candidate_text).hexdigest()}
if out["installed_version"]:
    if out["file"]["exists"]:
        out["file"].update(check(params["config_file"]))
    with tempfile.NamedTemporaryFile("wb", suffix=".json") as candidate:
        candidate.write(candidate_text)
        candidate.flush()
        out["candidate"].update(check(candidate.name))

# Descriptor limits: systemd's hard one caps what LimitNOFILE gives a service.
def nofile(pid):
    with open(f"/proc/{pid}/limits") as f:
        soft, hard = re.search(r"Max open files +(\d+) +(\d+)", f.read()).groups()
    return int(soft), int(hard)


out["nofile_cap"] = nofile(1)[1]
out["nofile_running"] = nofile(out["status"]["supervisor"]["pid"])[0] if out["status"] else 0
out["dropin"] = sha1(f"/etc/systemd/system/{params['unit']}.d/limits.conf")

try:
    with open(os.path.join(params["previous_dir"], "snapshot.json")) as f:
        out["previous_version"] = json.load(f)["version"]
except (OSError, ValueError, KeyError):
    out["previous_version"] = ""
out["previous_dir"] = os.path.isdir(params["previous_dir"])
out["releases_dir"] = os.path.isdir(params["releases_dir"])
release = os.path.join(params["releases_dir"], params["package_file"])
out["release_sha256"] = hashlib.sha256(open(release, "rb").read()).hexdigest() if os.path.exists(release) else ""
print(json.dumps(out))
