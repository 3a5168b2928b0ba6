#!/usr/bin/env bash
# How throughput scales with the number of load generators: the HTTP example (one server, ab
# clients started at one instant, every host sampled) at N = 1, 2, 4, 8 clients. ec2-create
# *ensures* N, so each step grows the fleet and reuses the clients already running. Each step
# ends in its own report; the sweep fits Gunther's Universal Scalability Law through them —
# σ (contention), κ (coherency), λ (one client's throughput), the N of peak throughput — and
# says whether a step was client-bound (the curve then measures the clients, not the server).
# The OpenVPN seed did this by hand in spreadsheets (its steps 8-10).
#
#   testcases/scalability/run.sh [WORKDIR]   (STEPS="1 2 4 8" REQUESTS=1000 CONCURRENCY=4;
#                                             ec2-* on PATH, AWS + SSH configured)
# On AWS: an Ubuntu or Debian AMI (python3 serves; clients get ab from apt in their setup).
set -euo pipefail
steps=${STEPS:-1 2 4 8} requests=${REQUESTS:-1000} concurrency=${CONCURRENCY:-4}
work=${1:-$(mktemp -d)}
mkdir -p "$work/scalability" && cd "$work/scalability"
trap 'ec2-killall >/dev/null' EXIT   # never leave an instance running, whatever happens

cat > client-setup.sh <<'SETUP'
#!/bin/sh
set -e
command -v ab >/dev/null || { sudo apt-get update -qq && sudo apt-get install -y -qq apache2-utils; }
SETUP
ec2-create 1 --role server >/dev/null
ec2-exec-local -q --label none --role server 'echo "$CURRENT_AMI_PRIVATE_IP"' > server.addr
mkdir -p www && head -c 4096 /dev/zero | tr '\0' 'x' > www/index.html
ec2-put --role server server.addr www . >/dev/null
# The server is sampled for the whole sweep; each step's report keeps its own seconds.
ec2-exec-remote -q --role server --job http --sample -bg \
  'cd www && exec python3 -m http.server 8080 --bind "$(cat ../server.addr)" 2>../access.log' >/dev/null

cat > load.sh <<LOAD
#!/bin/sh
url="http://\$(cat server.addr):8080/index.html"
i=0; until ab -q -n 1 "\$url" >/dev/null 2>&1; do i=\$((i+1)); [ \$i -lt 100 ] || exit 3; sleep 0.2; done
ab -g ab.tsv -n $requests -c $concurrency "\$url" > ab.txt 2>&1
LOAD

reports=()
for n in $steps; do
  ec2-create "$n" --role client --setup client-setup.sh >/dev/null   # grows; reuses the rest
  ec2-put --role client server.addr load.sh . >/dev/null
  ec2-exec-remote -q --role client --at +3s --sample 'sh load.sh'
  ec2-get --role client ab.tsv "results/n$n" >/dev/null
  ec2-get --role server access.log "results/n$n" >/dev/null
  ec2-report --measure-clocks -o "reports/n$n" --title "HTTP load, $n clients" "results/n$n" >/dev/null
  reports+=("reports/n$n")
done
ec2-exec-remote -q --role server --job http --stop >/dev/null
ec2-report --sweep -o sweep "${reports[@]}"
