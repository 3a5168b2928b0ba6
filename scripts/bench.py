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

Latency (--rtts): the same `true` through scripts/relay.py, a delaying TCP relay in front of
every host (netem is not available here), at each round-trip time, for ec2-exec-remote cold
(`persist off`) and warm (its session holder, warmed by one run first), pdsh and parallel-ssh
at their default fan-outs (32) — all through the same relay.

Scale (--big N): ec2-create N, then ec2-exec-remote `true` on 100, 300 and N hosts: per-host
wall, client CPU, sshd CPU and the tool's peak RSS (ru_maxrss); RLIMIT_NOFILE is raised to the
hard limit first.

Files and job status (--files-hosts N): ec2-put and ec2-get of a 64 KiB file and a job's
`--status` on N hosts, cold (`persist off`) and warm (through the session holder), against
parallel-scp and parallel-slurp (curve25519, their default -p 32).

sshd CPU is summed over every sshd process: the main listener, one per instance (the EC2 front
makes each instance its own sshd), and the per-connection ones the session holder keeps alive,
each with its reaped children.

usage: scripts/bench.py [--runs N] [--sizes 100,300] [--rtts 0,10,50] [--big 1000] [--files-hosts 100]
                        [--out FILE]
"""
import argparse
import json
import os
import platform
import resource
import socket
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


def proc_cpu(pid):
    """utime+stime+cutime+cstime of a process, seconds (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(x) for x in fields[11:15]) / CLK


def cpu_of(matches):
    """CPU (with reaped children) of every live process whose command name `matches`, s. A
    process that exits meanwhile moves from the live sum to its parent's reaped-children time:
    counted once."""
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                text = f.read()
        except OSError:
            continue
        if matches(text[text.index("(") + 1:text.rindex(")")]):
            fields = text.rsplit(")", 1)[1].split()
            total += sum(int(x) for x in fields[11:15]) / CLK
    return total


def named_cpu(name):
    """CPU of every process called `name` (the session holder is `ec2-tools`), s."""
    return cpu_of(lambda comm: comm == name)


def sshd_cpu(_pid=None):
    """CPU of every sshd process on the machine — listeners, and per-connection ones still
    alive (the session holder's) — with their reaped children, seconds."""
    return cpu_of(lambda comm: comm.startswith("sshd"))


def timed(cmd, env, sshd_pid):
    """Run cmd; return (wall s, client cpu s, sshd cpu s, returncode). Client CPU is the
    tool's and its children's, plus what the case's session holder (`ec2-tools
    session-holder`, a process of its own) spent meanwhile: warm runs are not flattered."""
    s0 = sshd_cpu(sshd_pid)
    h0 = named_cpu("ec2-tools")
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    timed.maxrss_kb = ru.ru_maxrss
    time.sleep(0.3)  # let the per-connection sshd processes exit and be reaped
    s1 = sshd_cpu(sshd_pid)
    holder = named_cpu("ec2-tools") - h0
    err = p.stderr.read().decode(errors="replace")
    p.stderr.close()
    code = os.waitstatus_to_exitcode(status)
    return wall, ru.ru_utime + ru.ru_stime + max(holder, 0.0), s1 - s0, code, err


def interleaved(tools, n_runs, what, env, sshd_pid, also=None):
    """Run every tool `n_runs` times, interleaved (A, B, C, A, B, C, ...) so machine noise
    falls on all alike; each run's (wall, client CPU, sshd CPU, *extra) by tool. `tools`: name
    -> command, or (command, extra environment). `also`, if given, is called before each run
    and returns a function that, called after it, gives the extra (label, value) pairs (the
    relay's CPU, the peak RSS). A tool that fails ends the bench."""
    runs = {t: [] for t in tools}
    for r in range(n_runs):
        for t, spec in tools.items():
            cmd, extra_env = spec if isinstance(spec, tuple) else (spec, {})
            after = also() if also else (lambda: ())
            wall, cpu, scpu, code, err = timed(cmd, dict(env, **extra_env), sshd_pid)
            extra = after()
            if code != 0:
                sys.exit(f"bench: {what} {t} exited {code}: {err[-2000:]}")
            runs[t].append((wall, cpu, scpu) + tuple(v for _, v in extra))
            more = "".join(f" {k} {v}" for k, v in extra)
            print(f"bench: {what} run={r + 1} {t}: wall {wall:.3f}s client {cpu:.3f}s sshd {scpu:.3f}s{more}",
                  file=sys.stderr)
    return runs


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


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--sizes", default="100,300")
    ap.add_argument("--rtts", default="0,10,50", help="round-trip times (ms) for the latency section; '' skips it")
    ap.add_argument("--latency-sizes", default="100,300")
    ap.add_argument("--big", type=int, default=1000, help="the scale section's largest fleet; 0 skips it")
    ap.add_argument("--files-hosts", type=int, default=100,
                    help="hosts for the files and job-status section (cold vs warm, parallel-scp/slurp); 0 skips it")
    ap.add_argument("--out", default=os.path.join(REPO, "target", "bench", "report.md"))
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    rtts = [float(r) for r in args.rtts.split(",") if r.strip()]
    lat_sizes = [int(s) for s in args.latency_sizes.split(",")] if rtts else []
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # 1,000 hosts: sockets, sshds
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
        total = max(sizes + lat_sizes + [args.big])
        t0 = time.perf_counter()
        p = subprocess.run([os.path.join(BIN, "ec2-create"), str(total)], env=penv, cwd=fleet,
                           capture_output=True, text=True)
        if p.returncode != 0:
            sys.exit(f"bench: ec2-create {total} failed: {p.stderr}")
        life.append((f"ec2-create {total}", time.perf_counter() - t0, proxy.take()))
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
            ours = [os.path.join(BIN, "ec2-exec-remote"), "--dir", fleet, "--select", f"1-{n}", "--persist", "off"]
            warm = [os.path.join(BIN, "ec2-exec-remote"), "--dir", fleet, "--select", f"1-{n}", "--persist", "10m",
                    "true"]
            timed(warm, env, sshd_pid)  # the session holder logs in once, before the measured runs
            tools = {
                "ec2-exec-remote warm (persist)": (warm, {}),
                "ec2-exec-remote (fan-out 64)": (ours + ["--fanout", "64", "true"], {}),
                "ec2-exec-remote (fan-out 32)": (ours + ["--fanout", "32", "true"], {}),
                "pdsh (curve25519)": (["pdsh", "-R", "ssh", "-f", "64", "-l", user, "-w", "^" + hosts, "true"],
                                      {"PDSH_SSH_ARGS_APPEND": " ".join(pdsh_base + curve)}),
                "pdsh (default)": (["pdsh", "-R", "ssh", "-f", "64", "-l", user, "-w", "^" + hosts, "true"],
                                   {"PDSH_SSH_ARGS_APPEND": " ".join(pdsh_base)}),
                "parallel-ssh (curve25519)": (["parallel-ssh", "-p", "64", "-h", hosts, "-l", user,
                                               "-x", " ".join(["-p", port, "-i", key] + ssh_opts + curve), "true"], {}),
                "parallel-ssh (default)": (["parallel-ssh", "-p", "64", "-h", hosts, "-l", user,
                                            "-x", " ".join(["-p", port, "-i", key] + ssh_opts), "true"], {}),
            }
            results[n] = interleaved(tools, args.runs, f"n={n}", env, sshd_pid)

        # --- files and job status: every SSH tool, cold and warm, and pssh's copiers ----------
        files = {}
        if args.files_hosts:
            n = args.files_hosts
            hosts = os.path.join(work, f"hosts{n}")
            with open(hosts, "w") as f:
                f.write("\n".join(addrs[:n]) + "\n")
            payload = os.path.join(work, "payload.bin")
            with open(payload, "wb") as f:
                f.write(os.urandom(64 * 1024))
            out = os.path.join(work, "got")
            sel = ["--dir", fleet, "--select", f"1-{n}"]
            cold, hot = ["--persist", "off"], ["--persist", "10m"]
            pssh_x = " ".join(["-o", f"Port={port}", "-i", key] + ssh_opts + curve)  # scp: -P, not -p
            tool = lambda name: os.path.join(BIN, name)
            start = [tool("ec2-exec-remote")] + sel + hot + ["--job", "benchjob", "-bg", "true"]
            wall, cpu, scpu, code, err = timed(start, env, sshd_pid)  # also logs the holder in
            if code != 0:
                sys.exit(f"bench: starting the job on {n} hosts exited {code}: {err[-2000:]}")
            ops = {
                "ec2-put 64 KiB": {
                    "cold": [tool("ec2-put")] + sel + cold + [payload, "."],
                    "warm": [tool("ec2-put")] + sel + hot + [payload, "."],
                    "parallel-scp (c25519, -p 32)": ["parallel-scp", "-h", hosts, "-l", user, "-x", pssh_x,
                                                     payload, "payload.bin"],
                },
                "ec2-get 64 KiB": {
                    "cold": [tool("ec2-get")] + sel + cold + ["payload.bin", out],
                    "warm": [tool("ec2-get")] + sel + hot + ["payload.bin", out],
                    "parallel-slurp (c25519, -p 32)": ["parallel-slurp", "-h", hosts, "-l", user, "-x", pssh_x,
                                                       "-L", out + "-pssh", "payload.bin", "payload.bin"],
                },
                "job --status": {
                    "cold": [tool("ec2-exec-remote")] + sel + cold + ["--job", "benchjob", "--status"],
                    "warm": [tool("ec2-exec-remote")] + sel + hot + ["--job", "benchjob", "--status"],
                },
            }
            for op, tools in ops.items():
                files[op] = interleaved(tools, args.runs, f"files n={n} {op}", env, sshd_pid)

        # --- latency: every client through the same delaying relay ---------------------------
        latency = {}
        ours_cold = [os.path.join(BIN, "ec2-exec-remote"), "--dir", fleet, "--persist", "off"]
        for rtt in rtts:
            n_max = max(lat_sizes)
            lport = free_port()
            relay = subprocess.Popen([sys.executable, os.path.join(REPO, "scripts", "relay.py"),
                                      "--delay-ms", str(rtt / 2), "--listen-port", str(lport),
                                      "--target-port", port] + addrs[:n_max],
                                     stdout=subprocess.PIPE, text=True)
            if relay.stdout.readline().strip() != "ready":
                sys.exit("bench: the relay did not start")
            try:
                for n in lat_sizes:
                    hosts = os.path.join(work, f"hosts{n}")
                    with open(hosts, "w") as f:
                        f.write("\n".join(addrs[:n]) + "\n")
                    via = ["-p", str(lport), "-i", key] + ssh_opts + curve
                    sel = ["--select", f"1-{n}", "--port", str(lport)]
                    warm = [os.path.join(BIN, "ec2-exec-remote"), "--dir", fleet, "--persist", "10m"] + sel
                    tools = {
                        "ec2-exec-remote warm (persist)": (warm + ["true"], {}),
                        "ec2-exec-remote cold (fan-out 32)": (ours_cold + sel + ["-f", "32", "true"], {}),
                        "ec2-exec-remote cold (fan-out 128)": (ours_cold + sel + ["-f", "128", "true"], {}),
                        "ec2-exec-remote cold (fan-out 256)": (ours_cold + sel + ["-f", "256", "true"], {}),
                        "pdsh (curve25519, -f 32)": (["pdsh", "-R", "ssh", "-l", user, "-w", "^" + hosts, "true"],
                                                     {"PDSH_SSH_ARGS_APPEND": " ".join(via)}),
                        "parallel-ssh (curve25519, -p 32)": (["parallel-ssh", "-h", hosts, "-l", user,
                                                              "-x", " ".join(via), "true"], {}),
                    }
                    # The holder logs in once, before the measured runs.
                    wall, cpu, scpu, code, err = timed(warm + ["true"], env, sshd_pid)
                    if code != 0:
                        sys.exit(f"bench: warming up on {n} hosts at {rtt} ms exited {code}: {err[-2000:]}")
                    def relay_cpu(pid=relay.pid):  # the relay is on these cores too
                        r0 = proc_cpu(pid)
                        return lambda: (("relay", round(proc_cpu(pid) - r0, 3)),)
                    latency[(rtt, n)] = interleaved(tools, args.runs, f"rtt={rtt} n={n}", env, sshd_pid,
                                                    also=relay_cpu)
            finally:
                relay.kill()
                relay.wait()

        # --- scale: 100 → 300 → N hosts, cold and warm ---------------------------------------
        scale = {}
        if args.big:
            for n in sorted({100, 300, args.big}):
                sel = ["--dir", fleet, "--select", f"1-{n}"]
                tools = {
                    "cold (fan-out 64)": ([os.path.join(BIN, "ec2-exec-remote"), "--persist", "off", "-f", "64"]
                                         + sel + ["true"]),
                    "warm (persist)": [os.path.join(BIN, "ec2-exec-remote"), "--persist", "10m"] + sel + ["true"],
                }
                timed(tools["warm (persist)"], env, sshd_pid)  # log the holder in
                scale[n] = interleaved(tools, args.runs, f"scale n={n}", env, sshd_pid,
                                       also=lambda: lambda: (("rss_kb", timed.maxrss_kb),))
        t0 = time.perf_counter()
        p = subprocess.run([os.path.join(BIN, "ec2-killall")], env=penv, cwd=fleet, capture_output=True, text=True)
        if p.returncode != 0:
            sys.exit(f"bench: ec2-killall of {total} failed: {p.stderr}")
        life.append((f"ec2-killall ({total})", time.perf_counter() - t0, proxy.take()))
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
    if files:
        n = args.files_hosts
        report.append(f"\n#### Files and job status on {n} hosts: cold, warm (session holder), pssh's copiers\n")
        report.append("| operation | mode | wall s | client CPU s | sshd CPU s | wall / cold | wall / pssh |")
        report.append("|---|---|---|---|---|---|---|")
        for op, runs in files.items():
            cold_w = median([x[0] for x in runs["cold"]])
            peer = [t for t in runs if t not in ("cold", "warm")]
            peer_w = median([x[0] for x in runs[peer[0]]]) if peer else None
            for t, rs in runs.items():
                w, c, s = (median([x[i] for x in rs]) for i in range(3))
                vs_peer = f"{w / peer_w:.2f}" if peer_w else "—"
                report.append(f"| {op} | {t} | {w:.3f} | {c:.3f} | {s:.3f} | {w / cold_w:.2f} | {vs_peer} |")
    for (rtt, n), runs in sorted(latency.items()):
        report.append(f"\n#### `true` on {n} hosts at {rtt:g} ms RTT (every client through the same relay)\n")
        report.append("| tool | wall s | client CPU s | sshd CPU s | relay CPU s | floor s | wall / floor | "
                      "sshd CPU ms/host | wall / pdsh(c25519) |")
        report.append("|---|---|---|---|---|---|---|---|---|")
        ref = median([x[0] for x in runs["pdsh (curve25519, -f 32)"]])
        for t, rs in runs.items():
            w, c, s, rl = (median([x[i] for x in rs]) for i in range(4))
            floor = (c + s + rl) / CORES
            report.append(f"| {t} | {w:.3f} | {c:.3f} | {s:.3f} | {rl:.3f} | {floor:.3f} | {w / floor:.2f} | "
                          f"{s / n * 1000:.2f} | {w / ref:.2f} |")
        report.append("\nRaw (wall, client CPU, sshd CPU, relay CPU) per run:\n")
        for t, rs in runs.items():
            report.append(f"- {t}: " + ", ".join(f"({a:.3f}, {b:.3f}, {c:.3f}, {d:.3f})" for a, b, c, d in rs))
    if scale:
        report.append("\n#### Scale: `true` on 100 → 300 → N loopback hosts (per host: median wall, CPU / N)\n")
        report.append("| hosts | mode | wall s | wall ms/host | client CPU ms/host | sshd CPU ms/host | peak RSS MB (tool) |")
        report.append("|---|---|---|---|---|---|---|")
        for n, runs in sorted(scale.items()):
            for t, rs in runs.items():
                w, c, s = (median([x[i] for x in rs]) for i in range(3))
                rss = max(x[3] for x in rs) / 1024
                report.append(f"| {n} | {t} | {w:.3f} | {w / n * 1000:.2f} | {c / n * 1000:.2f} | "
                              f"{s / n * 1000:.2f} | {rss:.1f} |")
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
