#!/usr/bin/env python3
"""make bench: ec2-tools against pdsh and parallel-ssh on the local cloud, side by side.

Fan-out: `ec2-exec-remote true` vs `pdsh -R ssh -f 64` and `parallel-ssh -p 64`, each of the two
peers given `-o KexAlgorithms=curve25519-sha256` (the fair setting: libssh2 negotiates
curve25519 too) and left at its default, on 100 and 300 loopback addresses that all reach one
sshd (MaxStartups raised). Runs are interleaved (tool A, B, C, A, B, C, ...) so machine noise
hits all alike; medians are reported. For every run: wall time, client CPU (user+sys of the tool
and its children, from wait4) and sshd CPU (the listener's own and reaped children's CPU from
/proc, which covers every per-connection sshd). The floor for any client is
(sshd CPU + client CPU) / cores.

Lifecycle: `ec2-create 100` and `ec2-killall` against the emulator through a counting proxy:
wall time and EC2 API calls by action.

usage: scripts/bench.py [--runs N] [--sizes 100,300] [--out FILE]
"""
import argparse
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(REPO, "target", "release")
CLK = os.sysconf("SC_CLK_TCK")
CORES = os.cpu_count() or 1
MUTATING = {"RunInstances", "CreateTags", "TerminateInstances", "ImportKeyPair", "CreateSecurityGroup",
            "AuthorizeSecurityGroupIngress", "DeleteSecurityGroup", "DeleteKeyPair", "StartInstances",
            "StopInstances", "RebootInstances"}


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw)


def sshd_cpu(pid):
    """utime+stime+cutime+cstime of the sshd listener, seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / CLK


def timed(cmd, env, sshd_pid):
    """Run cmd; return (wall s, client cpu s, sshd cpu s, returncode)."""
    s0 = sshd_cpu(sshd_pid)
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    time.sleep(0.3)  # let the per-connection sshd processes exit and be reaped
    s1 = sshd_cpu(sshd_pid)
    err = p.stderr.read().decode(errors="replace")
    p.stderr.close()
    code = os.waitstatus_to_exitcode(status)
    return wall, ru.ru_utime + ru.ru_stime, s1 - s0, code, err


class Counter:
    """An HTTP proxy in front of the emulator that counts EC2 actions."""

    def __init__(self, upstream):
        self.upstream = upstream
        self.counts = {}
        self.lock = threading.Lock()
        counter = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the SDK expects

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                m = re.search(rb"Action=([A-Za-z]+)", body)
                if m:
                    with counter.lock:
                        a = m.group(1).decode()
                        counter.counts[a] = counter.counts.get(a, 0) + 1
                req = urllib.request.Request(counter.upstream + self.path, data=body, method="POST",
                                             headers={k: v for k, v in self.headers.items() if k.lower() != "host"})
                try:
                    with urllib.request.urlopen(req) as r:
                        data, code, headers = r.read(), r.status, r.headers
                except urllib.error.HTTPError as e:
                    data, code, headers = e.read(), e.code, e.headers
                self.send_response(code)
                for k, v in headers.items():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def take(self):
        with self.lock:
            c, self.counts = self.counts, {}
        return c


def versions():
    def v(cmd):
        try:
            out = subprocess.run(cmd, text=True, capture_output=True)
            return (out.stdout + out.stderr).strip().splitlines()[0]
        except Exception as e:  # noqa: BLE001
            return f"not found ({e})"
    return {
        "ec2-tools": v([os.path.join(BIN, "ec2-exec-remote"), "--version"]),
        "pdsh": v(["pdsh", "-V"]),
        "parallel-ssh": v(["parallel-ssh", "--version"]),
        "OpenSSH client": v(["ssh", "-V"]),
        "sshd": v(["/usr/sbin/sshd", "-V"]),
        "kernel": platform.release(),
        "cpu": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?"),
        "cores": str(CORES),
    }


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--sizes", default="100,300")
    ap.add_argument("--out", default=os.path.join(REPO, "target", "bench", "report.md"))
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    for tool in ("pdsh", "parallel-ssh"):
        if not shutil.which(tool):
            sys.exit(f"bench: {tool} not found (make bench installs pdsh and pssh)")
    state = tempfile.mkdtemp(prefix="ec2-tools-bench-cloud-")
    out = sh([os.path.join(REPO, "scripts", "localcloud"), "start", "--state", state, "--watch", str(os.getpid())]).stdout
    env = dict(os.environ)
    for line in out.splitlines():
        k, v = line[len("export "):].split("=", 1)
        env[k] = v
    env["EC2_TOOLS_TTL"] = "off"
    sshd_pid = int(env["LOCALCLOUD_SSHD_PID"])
    user, port, key = env["EC2_TOOLS_SSH_USER"], env["EC2_TOOLS_SSH_PORT"], env["EC2_TOOLS_SSH_KEY"]
    work = tempfile.mkdtemp(prefix="ec2-tools-bench-")
    report = []
    try:
        # --- lifecycle against the emulator, through the counting proxy ----------------------
        proxy = Counter(env["AWS_ENDPOINT_URL"])
        penv = dict(env, AWS_ENDPOINT_URL=proxy.url)
        life = []
        for label, extra in (("", {}), (" (name tags off)", {"EC2_TOOLS_NAME_TAGS": "off"})):
          case = os.path.join(work, "lifecycle" + str(len(life)))
          os.makedirs(case)
          for tool, cmd in (("ec2-create 100" + label, ["ec2-create", "100"]), ("ec2-killall", ["ec2-killall"])):
            t0 = time.perf_counter()
            p = subprocess.run([os.path.join(BIN, cmd[0])] + cmd[1:], env=dict(penv, **extra), cwd=case,
                               capture_output=True, text=True)
            wall = time.perf_counter() - t0
            if p.returncode != 0:
                sys.exit(f"bench: {tool} failed: {p.stderr}")
            counts = proxy.take()
            life.append((tool, wall, counts))

        # --- the fleet for fan-out -------------------------------------------------------------
        fleet = os.path.join(work, "fleet")
        os.makedirs(fleet)
        p = subprocess.run([os.path.join(BIN, "ec2-create"), str(max(sizes))], env=env, cwd=fleet,
                           capture_output=True, text=True)
        if p.returncode != 0:
            sys.exit(f"bench: ec2-create {max(sizes)} failed: {p.stderr}")
        addrs = [l.split()[1] for l in p.stdout.splitlines()]
        ssh_opts = ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
                    "-o", "LogLevel=ERROR"]
        curve = ["-o", "KexAlgorithms=curve25519-sha256"]
        results = {}
        for n in sizes:
            hosts = os.path.join(work, f"hosts{n}")
            with open(hosts, "w") as f:
                f.write("\n".join(addrs[:n]) + "\n")
            pdsh_base = ["-p", port, "-i", key] + ssh_opts
            ours = [os.path.join(BIN, "ec2-exec-remote"), "--dir", fleet, "--select", f"1-{n}"]
            tools = {
                "ec2-exec-remote (fan-out 64)": (ours + ["--fanout", "64", "true"], {}),
                "ec2-exec-remote (default, fan-out 32)": (ours + ["true"], {}),
                "pdsh (curve25519)": (["pdsh", "-R", "ssh", "-f", "64", "-l", user, "-w", "^" + hosts, "true"],
                                      {"PDSH_SSH_ARGS_APPEND": " ".join(pdsh_base + curve)}),
                "pdsh (default)": (["pdsh", "-R", "ssh", "-f", "64", "-l", user, "-w", "^" + hosts, "true"],
                                   {"PDSH_SSH_ARGS_APPEND": " ".join(pdsh_base)}),
                "parallel-ssh (curve25519)": (["parallel-ssh", "-p", "64", "-h", hosts, "-l", user,
                                               "-x", " ".join(["-p", port, "-i", key] + ssh_opts + curve), "true"], {}),
                "parallel-ssh (default)": (["parallel-ssh", "-p", "64", "-h", hosts, "-l", user,
                                            "-x", " ".join(["-p", port, "-i", key] + ssh_opts), "true"], {}),
            }
            runs = {t: [] for t in tools}
            for r in range(args.runs):
                for t, (cmd, extra) in tools.items():
                    wall, cpu, scpu, code, err = timed(cmd, dict(env, **extra), sshd_pid)
                    if code != 0:
                        sys.exit(f"bench: {t} on {n} hosts exited {code}: {err[-2000:]}")
                    runs[t].append((wall, cpu, scpu))
                    print(f"bench: n={n} run={r + 1} {t}: wall {wall:.3f}s client {cpu:.3f}s sshd {scpu:.3f}s",
                          file=sys.stderr)
            results[n] = runs
    finally:
        subprocess.run([os.path.join(REPO, "scripts", "localcloud"), "stop", "--state", state])
        shutil.rmtree(work, ignore_errors=True)

    # --- report ------------------------------------------------------------------------------------
    v = versions()
    report.append("Machine and versions: " + "; ".join(f"{k} {val}" for k, val in v.items()) + "\n")
    report.append(f"Runs per cell: {args.runs} (interleaved); figures are medians; floor = (sshd CPU + client CPU) / {CORES} cores.\n")
    for n in sizes:
        report.append(f"\n#### `true` on {n} hosts (pdsh -f 64, parallel-ssh -p 64)\n")
        report.append("| tool | wall s | client CPU s | sshd CPU s | floor s | wall / floor | wall / pdsh(c25519) | client CPU / pdsh(c25519) |")
        report.append("|---|---|---|---|---|---|---|---|")
        ref = results[n]["pdsh (curve25519)"]
        ref_wall, ref_cpu = median([x[0] for x in ref]), median([x[1] for x in ref])
        for t, rs in results[n].items():
            w, c, s = median([x[0] for x in rs]), median([x[1] for x in rs]), median([x[2] for x in rs])
            floor = (s + c) / CORES
            report.append(f"| {t} | {w:.3f} | {c:.3f} | {s:.3f} | {floor:.3f} | {w / floor:.2f} | {w / ref_wall:.2f} | {c / ref_cpu:.2f} |")
        report.append("\nRaw (wall, client CPU, sshd CPU) per run:\n")
        for t, rs in results[n].items():
            report.append(f"- {t}: " + ", ".join(f"({a:.3f}, {b:.3f}, {c:.3f})" for a, b, c in rs))
    if len(sizes) > 1:
        a, b = sizes[0], sizes[-1]
        report.append(f"\n#### Per-host cost, {a} → {b} hosts (ec2-exec-remote, fan-out 64)\n")
        ra, rb = results[a]["ec2-exec-remote (fan-out 64)"], results[b]["ec2-exec-remote (fan-out 64)"]
        for i, what in ((0, "wall"), (1, "client CPU"), (2, "sshd CPU")):
            pa, pb = median([x[i] for x in ra]) / a * 1000, median([x[i] for x in rb]) / b * 1000
            report.append(f"- {what}: {pa:.2f} ms/host → {pb:.2f} ms/host (×{pb / pa:.2f})")
    report.append("\n#### Lifecycle against the emulator (through a counting proxy)\n")
    report.append("| command | wall s | EC2 calls by action | mutating calls |")
    report.append("|---|---|---|---|")
    for tool, wall, counts in life:
        mut = sum(c for a, c in counts.items() if a in MUTATING)
        calls = ", ".join(f"{a} {c}" for a, c in sorted(counts.items()))
        report.append(f"| `{tool}` | {wall:.2f} | {calls} | {mut} |")
    text = "\n".join(report) + "\n"
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
