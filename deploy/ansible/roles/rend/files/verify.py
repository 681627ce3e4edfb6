"""The rend role's post-checks, in one round trip: systemd has the unit active; every worker is
ready and memcached and rend-l2 run (rendctl --json status); a client's set, get and delete of a
key of its own work on the port; /metrics answers and rend_children_up counts every worker,
memcached and rend-l2. Prints {"ok": bool, "problems": [...]}. Usage: python3 - PARAMS_JSON (the
role feeds this file on stdin and retries until ok)."""
import json
import os
import socket
import subprocess
import sys
import urllib.request

params = json.loads(sys.argv[1])
# Ansible renders some of these as strings.
for name in ("workers", "port"):
    params[name] = int(params[name])
for name in ("memcached", "l2"):
    params[name] = str(params[name]).lower() == "true"
problems = []


def probe(host, port):
    key = f"rend-probe-{socket.gethostname()}-{os.getpid()}".encode()
    value = os.urandom(8).hex().encode()
    checks = [
        (b"set %s 0 60 %d\r\n%s\r\n" % (key, len(value), value), b"STORED\r\n"),
        (b"get %s\r\n" % key, b"VALUE %s 0 %d\r\n%s\r\nEND\r\n" % (key, len(value), value)),
        (b"delete %s\r\n" % key, b"DELETED\r\n"),
        (b"get %s\r\n" % key, b"END\r\n"),
    ]
    with socket.create_connection((host, port), timeout=5) as s:
        for request, expected in checks:
            s.sendall(request)
            got, terminator = b"", b"END\r\n" if request.startswith(b"get") else b"\r\n"
            while not got.endswith(terminator):
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
            if got != expected:
                return f"{request.split()[0].decode()} answered {got[:80]!r}, expected {expected!r}"
    return None


def check():
    active = subprocess.run(["systemctl", "is-active", params["unit"]], capture_output=True, text=True).stdout.strip()
    if active != "active":
        return [f"{params['unit']} is {active}"]
    out = subprocess.run(["rendctl", "--config", params["config_file"], "--json", "status"], capture_output=True,
                         text=True, timeout=30)
    if out.returncode != 0:
        return [f"rendctl status: {out.stderr.strip()}"]
    status = json.loads(out.stdout)
    found = []
    workers = status["workers"]
    if status["supervisor"]["state"] != "running":
        found.append(f"supervisor {status['supervisor']['state']}")
    if len(workers) < max(params["workers"], 1) or any(w["state"] != "ready" for w in workers):
        found.append("workers: " + ", ".join(f"{w['slot']} {w['state']}" for w in workers))
    for child, wanted in (("memcached", params["memcached"]), ("l2", params["l2"])):
        if wanted and status.get(child, {}).get("state") != "running":
            found.append(f"{child}: {status.get(child, {}).get('state', 'absent')}")
    try:
        failed = probe(params["host"], params["port"])
        if failed:
            found.append(f"probe on port {params['port']}: {failed}")
    except OSError as e:
        found.append(f"probe on port {params['port']}: {e}")
    if params["metrics"]:
        try:
            with urllib.request.urlopen(f"http://{params['metrics']}/metrics", timeout=5) as r:
                scrape = r.read().decode()
            wanted = {"worker": len(workers), "memcached": int(params["memcached"]), "rend-l2": int(params["l2"])}
            for child, n in wanted.items():
                if f'rend_children_up{{child="{child}"}} {n}\n' not in scrape:
                    found.append(f"/metrics: rend_children_up{{child=\"{child}\"}} is not {n}")
        except OSError as e:
            found.append(f"/metrics: {e}")
    return found


problems = check()
print(json.dumps({"ok": not problems, "problems": problems}))
