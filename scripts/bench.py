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

Lifecycle: `ec2-create 100` and `ec2-killall` against the emulator: wall time and EC2 API calls
by action (the EC2 front's own counters).

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
import collections
import json
import os
import platform
import resource
import socket
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

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


def sshd_cpu():
    """CPU of every sshd process on the machine — listeners, and per-connection ones still
    alive (the session holder's) — with their reaped children, seconds."""
    return cpu_of(lambda comm: comm.startswith("sshd"))


Timed = collections.namedtuple("Timed", "wall cpu sshd code err maxrss_kb")


def timed(cmd, env):
    """Run cmd: wall s, client CPU s, sshd CPU s, exit code, stderr and peak RSS (KiB). Client
    CPU is the tool's and its children's, plus what the case's session holder (`ec2-tools
    session-holder`, a process of its own) spent meanwhile: warm runs are not flattered."""
    s0 = sshd_cpu()
    h0 = named_cpu("ec2-tools")
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    time.sleep(0.3)  # let the per-connection sshd processes exit and be reaped
    s1 = sshd_cpu()
    holder = named_cpu("ec2-tools") - h0
    err = p.stderr.read().decode(errors="replace")
    p.stderr.close()
    code = os.waitstatus_to_exitcode(status)
    return Timed(wall, ru.ru_utime + ru.ru_stime + max(holder, 0.0), s1 - s0, code, err,
                 ru.ru_maxrss)


def interleaved(tools, n_runs, what, env, also=None):
    """Run every tool `n_runs` times, interleaved (A, B, C, A, B, C, ...) so machine noise
    falls on all alike; each run's (wall, client CPU, sshd CPU, *extra) by tool. `tools`: name
    -> command, or (command, extra environment). `also`, if given, is called before each run
    and returns a function that, called with the run's Timed after it, gives the extra
    (label, value) pairs (the relay's CPU, the peak RSS). A tool that fails ends the bench."""
    runs = {t: [] for t in tools}
    for r in range(n_runs):
        for t, spec in tools.items():
            cmd, extra_env = spec if isinstance(spec, tuple) else (spec, {})
            after = also() if also else (lambda _run: ())
            run = timed(cmd, dict(env, **extra_env))
            extra = after(run)
            if run.code != 0:
                sys.exit(f"bench: {what} {t} exited {run.code}: {run.err[-2000:]}")
            runs[t].append((run.wall, run.cpu, run.sshd) + tuple(v for _, v in extra))
            more = "".join(f" {k} {v}" for k, v in extra)
            print(f"bench: {what} run={r + 1} {t}: wall {run.wall:.3f}s client {run.cpu:.3f}s "
                  f"sshd {run.sshd:.3f}s{more}", file=sys.stderr)
    return runs


class FrontCounters:
    """The EC2 front's own call counters for this caller (GET /__proxy/counters?key=AKID):
    `take()` is the calls by action since the last take."""

    def __init__(self, env):
        self.url = "%s/__proxy/counters?key=%s" % (env["AWS_ENDPOINT_URL"],
                                                   urllib.parse.quote(env["AWS_ACCESS_KEY_ID"]))
        self.seen = self.read()

    def read(self):
        with urllib.request.urlopen(self.url) as r:
            return json.loads(r.read())["calls"]

    def take(self):
        now = self.read()
        delta = {a: n - self.seen.get(a, 0) for a, n in now.items() if n > self.seen.get(a, 0)}
        self.seen = now
        return delta


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


class Bench:
    """One bench run: the local cloud's environment, the working directory, the fleet and
    its addresses, and every section's figures for the report."""

    def __init__(self, args, env, work):
        self.args, self.env, self.work = args, env, work
        self.user, self.port, self.key = (env["EC2_TOOLS_SSH_USER"], env["EC2_TOOLS_SSH_PORT"],
                                          env["EC2_TOOLS_SSH_KEY"])
        self.sizes = [int(s) for s in args.sizes.split(",")]
        self.rtts = [float(r) for r in args.rtts.split(",") if r.strip()]
        self.lat_sizes = [int(s) for s in args.latency_sizes.split(",")] if self.rtts else []
        self.counters = FrontCounters(env)
        self.life, self.results, self.files, self.latency, self.scale = [], {}, {}, {}, {}
        self.fleet, self.addrs, self.total = None, [], 0

    def tool(self, name):
        return os.path.join(BIN, name)

    def hosts_file(self, n):
        hosts = os.path.join(self.work, f"hosts{n}")
        with open(hosts, "w") as f:
            f.write("\n".join(self.addrs[:n]) + "\n")
        return hosts

    def run_counted(self, label, cmd, cwd, extra=None):
        """One lifecycle command: its wall time and the EC2 calls it made, kept for the
        report; its stdout."""
        t0 = time.perf_counter()
        p = subprocess.run([self.tool(cmd[0])] + cmd[1:], env=dict(self.env, **(extra or {})),
                           cwd=cwd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if p.returncode != 0:
            sys.exit(f"bench: {label} failed: {p.stderr}")
        self.life.append((label, wall, self.counters.take()))
        return p.stdout

    def lifecycle(self):
        """ec2-create 100 and ec2-killall, with name tags and without."""
        for label, extra in (("", {}), (" (name tags off)", {"EC2_TOOLS_NAME_TAGS": "off"})):
            case = os.path.join(self.work, "lifecycle" + str(len(self.life)))
            os.makedirs(case)
            self.run_counted("ec2-create 100" + label, ["ec2-create", "100"], case, extra)
            self.run_counted("ec2-killall", ["ec2-killall"], case, extra)

    def make_fleet(self):
        """The fleet every later section uses: as many instances as the largest one needs."""
        self.fleet = os.path.join(self.work, "fleet")
        os.makedirs(self.fleet)
        self.total = max(self.sizes + self.lat_sizes + [self.args.big])
        out = self.run_counted(f"ec2-create {self.total}", ["ec2-create", str(self.total)],
                               self.fleet)
        self.addrs = [line.split()[1] for line in out.splitlines()]

    def fanout(self):
        """`true` on each size: ours cold and warm against pdsh and parallel-ssh."""
        for n in self.sizes:
            hosts = self.hosts_file(n)
            pdsh_base = ["-p", self.port, "-i", self.key] + SSH_OPTS
            ours = [self.tool("ec2-exec-remote"), "--dir", self.fleet, "--select", f"1-{n}",
                    "--persist", "off"]
            warm = [self.tool("ec2-exec-remote"), "--dir", self.fleet, "--select", f"1-{n}",
                    "--persist", "10m", "true"]
            timed(warm, self.env)  # the session holder logs in once, before the measured runs
            pdsh = ["pdsh", "-R", "ssh", "-f", "64", "-l", self.user, "-w", "^" + hosts, "true"]
            pssh = ["parallel-ssh", "-p", "64", "-h", hosts, "-l", self.user, "-x"]
            tools = {
                "ec2-exec-remote warm (persist)": (warm, {}),
                "ec2-exec-remote (fan-out 64)": (ours + ["--fanout", "64", "true"], {}),
                "ec2-exec-remote (fan-out 32)": (ours + ["--fanout", "32", "true"], {}),
                "pdsh (curve25519)": (pdsh, {"PDSH_SSH_ARGS_APPEND": " ".join(pdsh_base + CURVE)}),
                "pdsh (default)": (pdsh, {"PDSH_SSH_ARGS_APPEND": " ".join(pdsh_base)}),
                "parallel-ssh (curve25519)": (pssh + [" ".join(pdsh_base + CURVE), "true"], {}),
                "parallel-ssh (default)": (pssh + [" ".join(pdsh_base), "true"], {}),
            }
            self.results[n] = interleaved(tools, self.args.runs, f"n={n}", self.env)

    def files_and_jobs(self):
        """ec2-put, ec2-get and a job's --status, cold and warm, against pssh's copiers."""
        n = self.args.files_hosts
        hosts = self.hosts_file(n)
        payload = os.path.join(self.work, "payload.bin")
        with open(payload, "wb") as f:
            f.write(os.urandom(64 * 1024))
        out = os.path.join(self.work, "got")
        sel = ["--dir", self.fleet, "--select", f"1-{n}"]
        cold, hot = ["--persist", "off"], ["--persist", "10m"]
        pssh_x = " ".join(["-o", f"Port={self.port}", "-i", self.key] + SSH_OPTS + CURVE)
        start = [self.tool("ec2-exec-remote")] + sel + hot + ["--job", "benchjob", "-bg", "true"]
        run = timed(start, self.env)  # also logs the holder in
        if run.code != 0:
            sys.exit(f"bench: starting the job on {n} hosts exited {run.code}: {run.err[-2000:]}")
        put, get, ex = self.tool("ec2-put"), self.tool("ec2-get"), self.tool("ec2-exec-remote")
        pssh = ["-h", hosts, "-l", self.user, "-x", pssh_x]
        ops = {
            "ec2-put 64 KiB": {
                "cold": [put] + sel + cold + [payload, "."],
                "warm": [put] + sel + hot + [payload, "."],
                "parallel-scp (c25519, -p 32)": ["parallel-scp"] + pssh + [payload, "payload.bin"],
            },
            "ec2-get 64 KiB": {
                "cold": [get] + sel + cold + ["payload.bin", out],
                "warm": [get] + sel + hot + ["payload.bin", out],
                "parallel-slurp (c25519, -p 32)": ["parallel-slurp"] + pssh
                + ["-L", out + "-pssh", "payload.bin", "payload.bin"],
            },
            "job --status": {
                "cold": [ex] + sel + cold + ["--job", "benchjob", "--status"],
                "warm": [ex] + sel + hot + ["--job", "benchjob", "--status"],
            },
        }
        for op, tools in ops.items():
            self.files[op] = interleaved(tools, self.args.runs, f"files n={n} {op}", self.env)

    def latencies(self):
        """`true` at each round-trip time, every client through the same delaying relay."""
        for rtt in self.rtts:
            lport = free_port()
            relay = subprocess.Popen([sys.executable, os.path.join(REPO, "scripts", "relay.py"),
                                      "--delay-ms", str(rtt / 2), "--listen-port", str(lport),
                                      "--target-port", self.port] + self.addrs[:max(self.lat_sizes)],
                                     stdout=subprocess.PIPE, text=True)
            if relay.stdout.readline().strip() != "ready":
                sys.exit("bench: the relay did not start")
            try:
                for n in self.lat_sizes:
                    self.latency[(rtt, n)] = self.through_relay(rtt, n, lport, relay.pid)
            finally:
                relay.kill()
                relay.wait()

    def through_relay(self, rtt, n, lport, relay_pid):
        hosts = self.hosts_file(n)
        via = ["-p", str(lport), "-i", self.key] + SSH_OPTS + CURVE
        sel = ["--select", f"1-{n}", "--port", str(lport)]
        ours = [self.tool("ec2-exec-remote"), "--dir", self.fleet]
        warm = ours + ["--persist", "10m"] + sel
        cold = ours + ["--persist", "off"] + sel
        tools = {
            "ec2-exec-remote warm (persist)": (warm + ["true"], {}),
            "ec2-exec-remote cold (fan-out 32)": (cold + ["-f", "32", "true"], {}),
            "ec2-exec-remote cold (fan-out 128)": (cold + ["-f", "128", "true"], {}),
            "ec2-exec-remote cold (fan-out 256)": (cold + ["-f", "256", "true"], {}),
            "pdsh (curve25519, -f 32)": (["pdsh", "-R", "ssh", "-l", self.user, "-w", "^" + hosts,
                                          "true"], {"PDSH_SSH_ARGS_APPEND": " ".join(via)}),
            "parallel-ssh (curve25519, -p 32)": (["parallel-ssh", "-h", hosts, "-l", self.user,
                                                  "-x", " ".join(via), "true"], {}),
        }
        # The holder logs in once, before the measured runs.
        run = timed(warm + ["true"], self.env)
        if run.code != 0:
            sys.exit(f"bench: warming up on {n} hosts at {rtt} ms exited {run.code}: "
                     f"{run.err[-2000:]}")

        def relay_cpu():  # the relay is on these cores too
            r0 = proc_cpu(relay_pid)
            return lambda _run: (("relay", round(proc_cpu(relay_pid) - r0, 3)),)
        return interleaved(tools, self.args.runs, f"rtt={rtt} n={n}", self.env, also=relay_cpu)

    def scaling(self):
        """`true` on 100, 300 and N hosts, cold and warm, with the tool's peak RSS."""
        for n in sorted({100, 300, self.args.big}):
            sel = ["--dir", self.fleet, "--select", f"1-{n}"]
            ours = self.tool("ec2-exec-remote")
            tools = {
                "cold (fan-out 64)": [ours, "--persist", "off", "-f", "64"] + sel + ["true"],
                "warm (persist)": [ours, "--persist", "10m"] + sel + ["true"],
            }
            timed(tools["warm (persist)"], self.env)  # log the holder in
            self.scale[n] = interleaved(tools, self.args.runs, f"scale n={n}", self.env,
                                        also=lambda: lambda run: (("rss_kb", run.maxrss_kb),))

    def run(self):
        self.lifecycle()
        self.make_fleet()
        self.fanout()
        if self.args.files_hosts:
            self.files_and_jobs()
        self.latencies()
        if self.args.big:
            self.scaling()
        self.run_counted(f"ec2-killall ({self.total})", ["ec2-killall"], self.fleet)


SSH_OPTS = ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o",
            "BatchMode=yes", "-o", "LogLevel=ERROR"]
CURVE = ["-o", "KexAlgorithms=curve25519-sha256"]


def report_fanout(b, report):
    for n in b.sizes:
        report.append(f"\n#### `true` on {n} hosts (pdsh -f 64, parallel-ssh -p 64)\n")
        report.append("| tool | wall s | client CPU s | sshd CPU s | floor s | wall / floor | wall / pdsh(c25519) | client CPU / pdsh(c25519) |")
        report.append("|---|---|---|---|---|---|---|---|")
        ref = b.results[n]["pdsh (curve25519)"]
        ref_wall, ref_cpu = median([x[0] for x in ref]), median([x[1] for x in ref])
        for t, rs in b.results[n].items():
            w, c, s = median([x[0] for x in rs]), median([x[1] for x in rs]), median([x[2] for x in rs])
            floor = (s + c) / CORES
            report.append(f"| {t} | {w:.3f} | {c:.3f} | {s:.3f} | {floor:.3f} | {w / floor:.2f} | {w / ref_wall:.2f} | {c / ref_cpu:.2f} |")
        report.append("\nRaw (wall, client CPU, sshd CPU) per run:\n")
        for t, rs in b.results[n].items():
            report.append(f"- {t}: " + ", ".join(f"({x:.3f}, {y:.3f}, {z:.3f})" for x, y, z in rs))
    if len(b.sizes) > 1:
        lo, hi = b.sizes[0], b.sizes[-1]
        report.append(f"\n#### Per-host cost, {lo} → {hi} hosts (ec2-exec-remote, fan-out 64)\n")
        ra, rb = b.results[lo]["ec2-exec-remote (fan-out 64)"], b.results[hi]["ec2-exec-remote (fan-out 64)"]
        for i, what in ((0, "wall"), (1, "client CPU"), (2, "sshd CPU")):
            pa, pb = median([x[i] for x in ra]) / lo * 1000, median([x[i] for x in rb]) / hi * 1000
            report.append(f"- {what}: {pa:.2f} ms/host → {pb:.2f} ms/host (×{pb / pa:.2f})")


def report_files(b, report):
    if not b.files:
        return
    n = b.args.files_hosts
    report.append(f"\n#### Files and job status on {n} hosts: cold, warm (session holder), pssh's copiers\n")
    report.append("| operation | mode | wall s | client CPU s | sshd CPU s | wall / cold | wall / pssh |")
    report.append("|---|---|---|---|---|---|---|")
    for op, runs in b.files.items():
        cold_w = median([x[0] for x in runs["cold"]])
        peer = [t for t in runs if t not in ("cold", "warm")]
        peer_w = median([x[0] for x in runs[peer[0]]]) if peer else None
        for t, rs in runs.items():
            w, c, s = (median([x[i] for x in rs]) for i in range(3))
            vs_peer = f"{w / peer_w:.2f}" if peer_w else "—"
            report.append(f"| {op} | {t} | {w:.3f} | {c:.3f} | {s:.3f} | {w / cold_w:.2f} | {vs_peer} |")


def report_latency(b, report):
    for (rtt, n), runs in sorted(b.latency.items()):
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
            report.append(f"- {t}: " + ", ".join(f"({w:.3f}, {x:.3f}, {y:.3f}, {z:.3f})" for w, x, y, z in rs))


def report_scale(b, report):
    if not b.scale:
        return
    report.append("\n#### Scale: `true` on 100 → 300 → N loopback hosts (per host: median wall, CPU / N)\n")
    report.append("| hosts | mode | wall s | wall ms/host | client CPU ms/host | sshd CPU ms/host | peak RSS MB (tool) |")
    report.append("|---|---|---|---|---|---|---|")
    for n, runs in sorted(b.scale.items()):
        for t, rs in runs.items():
            w, c, s = (median([x[i] for x in rs]) for i in range(3))
            rss = max(x[3] for x in rs) / 1024
            report.append(f"| {n} | {t} | {w:.3f} | {w / n * 1000:.2f} | {c / n * 1000:.2f} | "
                          f"{s / n * 1000:.2f} | {rss:.1f} |")


def report_lifecycle(b, report):
    report.append("\n#### Lifecycle against the emulator (the EC2 front's call counters)\n")
    report.append("| command | wall s | EC2 calls by action | mutating calls |")
    report.append("|---|---|---|---|")
    for tool, wall, counts in b.life:
        mut = sum(c for a, c in counts.items() if a in MUTATING)
        calls = ", ".join(f"{a} {c}" for a, c in sorted(counts.items()))
        report.append(f"| `{tool}` | {wall:.2f} | {calls} | {mut} |")


def write_report(b):
    v = versions()
    report = ["Machine and versions: " + "; ".join(f"{k} {val}" for k, val in v.items()) + "\n",
              f"Runs per cell: {b.args.runs} (interleaved); figures are medians; floor = (sshd CPU + client CPU) / {CORES} cores.\n"]
    for section in (report_fanout, report_files, report_latency, report_scale, report_lifecycle):
        section(b, report)
    text = "\n".join(report) + "\n"
    os.makedirs(os.path.dirname(b.args.out), exist_ok=True)
    with open(b.args.out, "w") as f:
        f.write(text)
    print(text)


def start_cloud():
    """The local cloud for this bench (stopped when it ends): its state directory and the
    environment the tools run in."""
    state = tempfile.mkdtemp(prefix="ec2-tools-bench-cloud-")
    out = sh([os.path.join(REPO, "scripts", "localcloud"), "start", "--state", state, "--watch",
              str(os.getpid())]).stdout
    env = dict(os.environ)
    for line in out.splitlines():
        k, v = line[len("export "):].split("=", 1)
        env[k] = v
    env["EC2_TOOLS_TTL"] = "off"
    return state, env


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
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # 1,000 hosts: sockets, sshds
    for tool in ("pdsh", "parallel-ssh"):
        if not shutil.which(tool):
            sys.exit(f"bench: {tool} not found (make bench installs pdsh and pssh)")
    state, env = start_cloud()
    work = tempfile.mkdtemp(prefix="ec2-tools-bench-")
    try:
        b = Bench(args, env, work)
        b.run()
    finally:
        subprocess.run([os.path.join(REPO, "scripts", "localcloud"), "stop", "--state", state])
        shutil.rmtree(work, ignore_errors=True)
    write_report(b)


if __name__ == "__main__":
    main()
