#!/usr/bin/env python3
"""`true` on N emulated instances over SSH and over SSM (issue 23), on the same instances:
wall time, client CPU and peak RSS of ec2-exec-remote, and the API calls each run made (the
EC2 front counts them per access key: each run gets a key of its own). Interleaved runs
(ssh cold, ssh warm, ssm, ssh cold, ...), medians. Then the calls a 10,000-instance run
would make, from the same plan the tool uses (its unit tests check it at that size) and the
poll rounds measured here.

usage: scripts/bench_ssm.py [--hosts 1000] [--runs 3] [--bins target/release] [--out FILE]
Run by `make bench-ssm`. Connects only to loopback (the local cloud)."""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (start_cloud: the local cloud, stopped when this process ends)

REPO = bench.REPO


def counters(env, key):
    req = urllib.request.Request(env["AWS_ENDPOINT_URL"] + "/__proxy/counters?key=" + key,
                                 data=b"", method="POST")
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read())


def run(tool, args, env, key):
    env = dict(env, AWS_ACCESS_KEY_ID=key)
    t0 = time.perf_counter()
    p = subprocess.Popen([tool] + args, env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    err = p.stderr.read().decode(errors="replace")
    code = os.waitstatus_to_exitcode(status)
    per_host = any(t in tool for t in ("ec2-exec-remote", "ec2-put", "ec2-get"))
    if code not in (0, 1) or (code == 1 and not per_host):
        sys.exit("%s %s: exit %d\n%s" % (tool, args, code, err[-2000:]))
    failed = 0
    if code == 1:  # hosts the emulator could not serve in time (its 1,000 sshds on 2 cores)
        print("%s: %s" % (args, err.strip().splitlines()[-1][:300]), file=sys.stderr)
        failed = int(err.split("failed ")[-1].split(" ")[0]) if "failed " in err else -1
    calls = counters(env, key)["calls"]
    return {"wall": wall, "cpu": ru.ru_utime + ru.ru_stime, "rss_mb": ru.ru_maxrss / 1024,
            "calls": calls, "failed": failed}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--bins", default=os.path.join(REPO, "target", "release"))
    ap.add_argument("--out", default=os.path.join(REPO, "target", "bench", "report-ssm.md"))
    a = ap.parse_args()
    state, env = bench.start_cloud()
    import boto3
    iam = boto3.client("iam", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    trust = json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
        "Action": "sts:AssumeRole"}]})
    iam.create_role(RoleName="bench-ssm", AssumeRolePolicyDocument=trust)
    iam.attach_role_policy(RoleName="bench-ssm",
                           PolicyArn="arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore")
    iam.create_instance_profile(InstanceProfileName="bench-ssm")
    iam.add_role_to_instance_profile(InstanceProfileName="bench-ssm", RoleName="bench-ssm")
    case = tempfile.mkdtemp(prefix="bench-ssm-")
    bins = os.path.abspath(a.bins)
    tool = lambda t: os.path.join(bins, t)  # noqa: E731
    env = dict(env, EC2_TOOLS_NAME_TAGS="off")
    os.chdir(case)
    # SSH-reachable instances (port 22 open) that are SSM managed nodes too: one fleet, both
    # transports.
    t0 = time.perf_counter()
    run(tool("ec2-create"), [str(a.hosts), "--iam-profile", "bench-ssm", "--timeout", "900"],
        env, "AKIDbenchcreate")
    print("ec2-create %d: %.1f s" % (a.hosts, time.perf_counter() - t0), file=sys.stderr)
    ssm = boto3.client("ssm", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    for _ in range(300):
        n, token = 0, None
        while True:
            kw = {"MaxResults": 50, **({"NextToken": token} if token else {})}
            page = ssm.describe_instance_information(**kw)
            n += sum(1 for i in page["InstanceInformationList"] if i["PingStatus"] == "Online")
            token = page.get("NextToken")
            if not token:
                break
        if n >= a.hosts:
            break
        time.sleep(1)
    modes = {
        "ssh, cold (`--persist off`, -f 64)": ["--transport", "ssh", "--persist", "off", "-f",
                                                "64", "true"],
        "ssh, warm (session holder)": ["--transport", "ssh", "--persist", "10m", "true"],
        "ssm": ["--transport", "ssm", "true"],
    }
    run(tool("ec2-exec-remote"), modes["ssh, warm (session holder)"], env, "AKIDbenchwarmup")
    results = {m: [] for m in modes}
    for r in range(a.runs):
        for m, args in modes.items():
            key = "AKIDbench%d%s" % (r, m.split(",")[0].split()[0] + str(len(m)))
            results[m].append(run(tool("ec2-exec-remote"), args, env, key))
            print("%s run %d: %.2f s" % (m, r + 1, results[m][-1]["wall"]), file=sys.stderr)
    copies = bench_copies(a, env, tool)
    run(tool("ec2-killall"), [], env, "AKIDbenchkill")
    write(a, results, copies)


def bench_copies(a, env, tool):
    """ec2-put of a 64 kB file to every host and ec2-get of it back, over SSH (SFTP) and over
    SSM (through an S3 bucket: one upload, the hosts fetch it; each host's tar uploaded, then
    fetched here -f at a time), interleaved, each run with its own key (its calls counted)."""
    import boto3
    s3 = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    s3.create_bucket(Bucket="bench-ssm")
    with open("payload.bin", "wb") as f:
        f.write(os.urandom(64 * 1024))
    modes = {
        "put, ssh": ["--transport", "ssh", "payload.bin", "in"],
        "put, ssm": ["--transport", "ssm", "--ssm-bucket", "bench-ssm", "payload.bin", "in"],
        "get, ssh": ["--transport", "ssh", "in/payload.bin", "out-ssh"],
        "get, ssm": ["--transport", "ssm", "--ssm-bucket", "bench-ssm", "in/payload.bin",
                     "out-ssm"],
    }
    results = {m: [] for m in modes}
    for r in range(a.runs):
        for m, args in modes.items():
            key = "AKIDcopy%d%s" % (r, m.replace(", ", ""))
            t = "ec2-put" if m.startswith("put") else "ec2-get"
            results[m].append(run(tool(t), args, env, key))
            print("%s run %d: %.2f s" % (m, r + 1, results[m][-1]["wall"]), file=sys.stderr)
    got = sum(1 for d in ("out-ssh", "out-ssm") for h in os.listdir(d)
              if os.path.getsize(os.path.join(d, h, "payload.bin")) == 64 * 1024)
    print("copies brought home intact: %d of %d" % (got, 2 * a.hosts), file=sys.stderr)
    return results, got


def row(mode, rs, no_calls):
    """One table row: the medians of a mode's runs, and the calls of its median run."""
    med = lambda k: statistics.median(r[k] for r in rs)  # noqa: E731
    calls = rs[len(rs) // 2]["calls"]
    shown = ", ".join("%s %d" % kv for kv in sorted(calls.items())) or no_calls
    return "| %s | %.2f | %.2f | %.0f | %s | %s |" % (
        mode, med("wall"), med("cpu"), med("rss_mb"), [r["failed"] for r in rs], shown)


def write(a, results, copies):
    lines = ["# `true` on %d emulated instances: SSH against SSM (medians of %d interleaved runs)"
             % (a.hosts, a.runs), "",
             "| transport | wall s | client CPU s | peak RSS MB | hosts failed | API calls by action (per run) |",
             "|---|---:|---:|---:|---|---|"]
    lists = []
    for m, rs in results.items():
        lines.append(row(m, rs, "none"))
        if m == "ssm":
            lists = [r["calls"].get("ListCommandInvocations", 0) for r in rs]
    pages = math.ceil(a.hosts / 50)
    rounds = statistics.median(lists) / pages if pages else 0
    n = 10_000
    lines += ["", "Raw runs: " + json.dumps({m: [round(r["wall"], 2) for r in rs]
                                            for m, rs in results.items()}), "",
              "## The calls a %d-instance SSM run makes (model from the same plan)" % n, "",
              "- SendCommand: 1 (the whole case by its tag; its host list and table fetched "
              "from S3 with --ssm-bucket, else refused before anything runs), or %d by ids "
              "(50 each) for a selection" % math.ceil(n / 50),
              "- ListCommandInvocations: %d pages per poll round × %.1f rounds (measured here "
              "at %d: %s calls over %d pages) = %d" % (
                  math.ceil(n / 50), rounds, a.hosts, lists, pages,
                  round(math.ceil(n / 50) * rounds)),
              "- GetCommandInvocation: 0 for `true` (fetched only for a host with output), "
              "at most %d" % n,
              "- S3: 2 PutObject + 2 DeleteObject (host list and table); the %d hosts' GETs "
              "are presigned, not this machine's calls" % n]
    copy_results, got = copies
    lines += ["", "## ec2-put of a 64 kB file to %d hosts, and ec2-get of it back (medians of %d "
              "interleaved runs)" % (a.hosts, a.runs), "",
              "| copy, transport | wall s | client CPU s | peak RSS MB | hosts failed | API calls by action (per run) |",
              "|---|---:|---:|---:|---|---|"]
    lines += [row(m, rs, "none (SFTP)") for m, rs in copy_results.items()]
    lines += ["", "Copies brought home intact (64 kB each, last run of each transport): %d of %d"
              % (got, 2 * a.hosts)]
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
