#!/usr/bin/env python3
"""make bench (report section): ec2-report merging H hosts x R requests against Python peers
doing the same merge, and against `cat` reading the same bytes (the floor: the input has to be
read once), side by side in one run.

Inputs (generated once, deterministic, into target/bench/report-data/): per host one file of R
per-request rows, in two lossless formats — `ab -g` TSV and the plain CSV contract
`unix_ms,latency_us,ok` — with latencies drawn from a log-normal-ish mix and hosts skewed
(every 10th host 3x slower).

Tools, interleaved (A, B, C, A, B, C ...) so machine noise hits all alike; medians reported:
  ec2-report   target/release/ec2-report -o OUT DIR (1 s intervals, HdrHistogram 3 digits,
               summary.json + timeline.csv + hosts.csv + latency.hlog + index.html)
  pandas       read_csv per host, concat, per-second counts, and quantiles of the union
               (the "pandas concat + quantiles" peer)
  hdrh         the `hdrhistogram` PyPI package as Taurus uses it: one histogram per host fed
               line by line, merged with add() — run once (it is slow), on the plain CSV only
  cat          cat every file > /dev/null

For each: wall time and peak RSS (ru_maxrss of the child, from wait4).

usage: scripts/bench_report.py [--hosts 100] [--requests 100000] [--runs 3] [--out FILE]
"""
import argparse
import math
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(REPO, "target", "release", "ec2-report")
PY = sys.executable

PANDAS = r'''
import os, sys, pandas as pd
d, fmt = sys.argv[1], sys.argv[2]
frames = []
for h in sorted(os.listdir(d)):
    for f in os.listdir(os.path.join(d, h)):
        p = os.path.join(d, h, f)
        if fmt == "ab":
            x = pd.read_csv(p, sep="\t", usecols=["seconds", "ttime"])
            frames.append(pd.DataFrame({"t": x["seconds"], "us": x["ttime"] * 1000}))
        else:
            x = pd.read_csv(p)
            frames.append(pd.DataFrame({"t": x["unix_ms"] // 1000, "us": x["latency_us"]}))
all_ = pd.concat(frames, ignore_index=True)
per_s = all_.groupby("t")["us"].agg(["count"])
q = all_["us"].quantile([0.5, 0.9, 0.99, 0.999, 1.0])
print(len(all_), len(per_s), list(q))
'''

HDRH = r'''
import os, sys
from hdrh.histogram import HdrHistogram
d = sys.argv[1]
total = HdrHistogram(1, 3600 * 1000 * 1000, 3)
n = 0
for h in sorted(os.listdir(d)):
    hh = HdrHistogram(1, 3600 * 1000 * 1000, 3)
    for f in os.listdir(os.path.join(d, h)):
        with open(os.path.join(d, h, f)) as fh:
            next(fh)
            for line in fh:
                hh.record_value(int(line.split(",", 2)[1]))
                n += 1
    total.add(hh)
print(n, [total.get_value_at_percentile(p) for p in (50, 90, 99, 99.9, 100)])
'''


def generate(root, hosts, requests):
    """Both formats, once; kept for later runs (same arguments, same bytes)."""
    stamp = os.path.join(root, f".done-{hosts}-{requests}")
    if os.path.exists(stamp):
        return
    shutil.rmtree(root, ignore_errors=True)
    rng = random.Random(42)
    t0 = 1_764_582_643
    for h in range(1, hosts + 1):
        slow = 3.0 if h % 10 == 0 else 1.0
        ab_dir = os.path.join(root, "ab", f"{h}-i-{h:017x}")
        csv_dir = os.path.join(root, "csv", f"{h}-i-{h:017x}")
        os.makedirs(ab_dir)
        os.makedirs(csv_dir)
        ab = ["starttime\tseconds\tctime\tdtime\tttime\twait\n"]
        csv = ["unix_ms,latency_us,ok\n"]
        for i in range(requests):
            us = int(math.exp(rng.gauss(7.5, 0.8)) * slow) + 50
            ms_start = t0 * 1000 + i * 100_000 // requests  # 100 s of load
            s = ms_start // 1000
            ab.append(f"Mon Dec  1 09:50:43 2025\t{s}\t0\t{us // 1000}\t{us // 1000}\t{us // 1000}\n")
            csv.append(f"{ms_start},{us},{0 if i % 997 == 0 else 1}\n")
        with open(os.path.join(ab_dir, "ab.tsv"), "w") as f:
            f.writelines(ab)
        with open(os.path.join(csv_dir, "lat.csv"), "w") as f:
            f.writelines(csv)
    open(stamp, "w").close()


def timed(cmd):
    """Wall seconds and peak RSS (MiB) of one child."""
    t = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.monotonic() - t
    err = p.stderr.read().decode(errors="replace")
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"bench_report: {cmd[0]} failed: {err}")
    return wall, ru.ru_maxrss / 1024


def du(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", type=int, default=100)
    ap.add_argument("--requests", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", default=os.path.join(REPO, "target", "bench", "report-merge.md"))
    a = ap.parse_args()
    root = os.path.join(REPO, "target", "bench", "report-data")
    generate(root, a.hosts, a.requests)
    out = tempfile.mkdtemp()
    rows = []
    for fmt, sub in (("ab", "ab"), ("csv", "csv")):
        d = os.path.join(root, sub)
        files = [os.path.join(dp, f) for dp, _, fs in os.walk(d) for f in fs]
        tools = {
            "ec2-report": [BIN, "-o", os.path.join(out, "r"), d],
            "pandas": [PY, "-c", PANDAS, d, fmt],
            "cat": ["sh", "-c", 'cat "$@" > /dev/null', "cat"] + files,
        }
        res = {k: [] for k in tools}
        for _ in range(a.runs):
            for k, cmd in tools.items():
                res[k].append(timed(cmd))
        if fmt == "csv":
            res["hdrh (PyPI)"] = [timed([PY, "-c", HDRH, d])]
        size = du(d)
        for k, v in res.items():
            wall = statistics.median(x[0] for x in v)
            rss = max(x[1] for x in v)
            rows.append((fmt, k, wall, rss, len(v), size))
    # RSS against the number of requests: the same hosts with a tenth of the rows.
    small = os.path.join(REPO, "target", "bench", "report-data-small")
    generate(small, a.hosts, a.requests // 10)
    w_small, rss_small = timed([BIN, "-o", os.path.join(out, "s"), os.path.join(small, "csv")])
    lines = [
        f"# ec2-report merge: {a.hosts} hosts x {a.requests:,} requests ({a.hosts * a.requests:,} rows), median of {a.runs}",
        "",
        "| input | tool | wall s | peak RSS MiB | runs | x ec2-report wall |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for fmt in ("ab", "csv"):
        base = next(r[2] for r in rows if r[0] == fmt and r[1] == "ec2-report")
        for r in rows:
            if r[0] == fmt:
                name = "ab -g TSV" if fmt == "ab" else "plain CSV"
                lines.append(f"| {name} ({r[5] / 2**20:.0f} MiB) | {r[1]} | {r[2]:.2f} | {r[3]:.0f} | {r[4]} | {r[2] / base:.2f} |")
    lines += ["", f"Peak RSS with a tenth of the requests (plain CSV, {a.hosts} x {a.requests // 10:,}): "
              f"{rss_small:.0f} MiB in {w_small:.2f} s.", ""]
    text = "\n".join(lines)
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as f:
        f.write(text)
    print(text)
    shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
