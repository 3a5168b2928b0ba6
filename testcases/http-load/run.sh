#!/usr/bin/env bash
# An HTTP load test: one server instance, N client instances running ApacheBench (`ab`, Debian's
# apache2-utils) against it at the same instant, every host sampled while it runs. ab writes
# one line per request (`ab -g`, lossless); ec2-get brings the results and the samples home and
# ec2-report merges them into one answer: fleet throughput and exact percentiles per second,
# whether a client was the limit, the server's CPU and network beside them, one page of charts.
# The JMeter and OpenVPN seeds both found result analysis by hand the painful part: here it is
# the last two lines.
#
#   testcases/http-load/run.sh [WORKDIR]   (CLIENTS=3 REQUESTS=2000 CONCURRENCY=8 REPORT=report;
#                                           ec2-* on PATH, AWS + SSH configured)
# On AWS: an Ubuntu or Debian AMI (python3 serves; clients get ab from apt in their setup).
set -euo pipefail
clients=${CLIENTS:-3} requests=${REQUESTS:-2000} concurrency=${CONCURRENCY:-8}
work=${1:-$(mktemp -d)}
mkdir -p "$work/http-load" && cd "$work/http-load"
trap 'ec2-killall >/dev/null' EXIT   # never leave an instance running, whatever happens

# Clients install the load generator while the others still boot (a no-op where it is there).
cat > client-setup.sh <<'SETUP'
#!/bin/sh
set -e
command -v ab >/dev/null || { sudo apt-get update -qq && sudo apt-get install -y -qq apache2-utils; }
SETUP
ec2-create 1 --role server >/dev/null
ec2-create "$clients" --role client --setup client-setup.sh >/dev/null
ec2-status

# The server's private address (how clients inside the VPC reach it) goes to every instance as
# a file; the server binds to it, sampled from its start (it is the target: its CPU and network
# are the finding). The case's security group lets its instances reach each other on every
# port, so nothing is opened to the world.
ec2-exec-local -q --label none --role server 'echo "$CURRENT_AMI_PRIVATE_IP"' > server.addr
mkdir -p www && head -c 4096 /dev/zero | tr '\0' 'x' > www/index.html
ec2-put server.addr www . >/dev/null
ec2-exec-remote -q --role server --job http --sample -bg \
  'cd www && exec python3 -m http.server 8080 --bind "$(cat ../server.addr)" 2>../access.log' >/dev/null

# Every client starts at the same instant, once the server answers; -g: one line per request.
cat > load.sh <<LOAD
#!/bin/sh
url="http://\$(cat server.addr):8080/index.html"
i=0; until ab -q -n 1 "\$url" >/dev/null 2>&1; do i=\$((i+1)); [ \$i -lt 100 ] || exit 3; sleep 0.2; done
ab -g ab.tsv -n $requests -c $concurrency "\$url" > ab.txt 2>&1
LOAD
ec2-put --role client load.sh . >/dev/null
ec2-exec-remote -q --role client --at +5s --sample 'sh load.sh'
ec2-exec-remote -q --role server --job http --stop >/dev/null

# Results and samples home; the answer.
ec2-get --role client ab.tsv results >/dev/null
ec2-get --role server access.log results >/dev/null
ec2-report --measure-clocks -o "${REPORT:-report}" --title "HTTP load: $clients clients × $requests requests" results
