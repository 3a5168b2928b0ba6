#!/usr/bin/env python3
"""Merge ApacheBench reports fetched by ec2-get (RESULTS/<index>-<id>/ab.txt) into one CSV
(one row per client: requests, failures, requests/s, p50/p99 latency in ms) and a PNG bar plot
of throughput per client (matplotlib; without it the CSV is still written).

    report.py RESULTS_DIR OUT.csv OUT.png
"""
import csv
import os
import re
import sys


def parse(text):
    """The figures of one `ab` report."""
    def num(pattern):
        m = re.search(pattern, text, re.M)
        if not m:
            raise ValueError("no %r in the ab report" % pattern)
        return float(m.group(1))

    return {
        "requests": int(num(r"^Complete requests:\s+(\d+)")),
        "failures": int(num(r"^Failed requests:\s+(\d+)")),
        "rps": num(r"^Requests per second:\s+([\d.]+)"),
        "p50_ms": int(num(r"^\s+50%\s+(\d+)")),
        "p99_ms": int(num(r"^\s+99%\s+(\d+)")),
    }


def main(results, out_csv, out_png):
    rows = []
    names = [n for n in os.listdir(results) if re.match(r"^\d+-i-[0-9a-f]+$", n)]
    for name in sorted(names, key=lambda n: int(n.split("-", 1)[0])):
        path = os.path.join(results, name, "ab.txt")
        with open(path) as f:
            try:
                row = parse(f.read())
            except ValueError as e:
                sys.exit("report.py: %s: %s" % (path, e))
        index, instance = name.split("-", 1)
        rows.append(dict(client=int(index), instance=instance, **row))
    if not rows:
        sys.exit("report.py: no ab.txt under %s" % results)
    fields = ["client", "instance", "requests", "failures", "rps", "p50_ms", "p99_ms"]
    with open(out_csv, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("report.py: no matplotlib; wrote %s only (pip install matplotlib)" % out_csv,
              file=sys.stderr)
        return
    fig, ax = plt.subplots(figsize=(max(6, len(rows) * 0.8 + 2), 3.5))
    labels = ["#%d" % r["client"] for r in rows]
    bars = ax.bar(labels, [r["rps"] for r in rows], color="#3b7dd8")
    for bar, r in zip(bars, rows):
        ax.annotate("p99 %d ms" % r["p99_ms"], (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center", va="bottom", fontsize=8)
    ax.set_xlabel("client (instance index)")
    ax.set_ylabel("requests / s")
    total = sum(r["rps"] for r in rows)
    ax.set_title("throughput per client — %.0f req/s in all, %d failed"
                 % (total, sum(r["failures"] for r in rows)), fontsize=10)
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
