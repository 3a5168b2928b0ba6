#!/bin/bash
# Several roles in one ec2-create against one ec2-create per role, on the realistic local
# cloud (EC2's boot timings: pending 5-17 s, SSH 17-34 s after launch): what one boot wait
# saves. Prints one line per run. Usage: scripts/bench_roles.sh [ROUNDS]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
rounds=${1:-2}
work=$(mktemp -d)
chmod 755 "$work" # the emulated machines' unprivileged user reads its key below it
state="$work/cloud"
trap '"$repo/scripts/localcloud" stop --state "$state"; rm -rf "$work"' EXIT
cloud=$("$repo/scripts/localcloud" start --state "$state" --realistic --watch $$)
eval "$cloud"
export PATH="$repo/target/debug:$PATH"
secs() { local s; s=$(date +%s.%N); "$@" >/dev/null; echo "$(date +%s.%N) - $s" | bc; }
for round in $(seq "$rounds"); do
  mkdir -p "$work/two-$round" "$work/one-$round"
  cd "$work/two-$round"
  t=$(secs sh -c 'ec2-create 1 --role server && ec2-create 3 --role client')
  ec2-killall >/dev/null 2>&1
  printf 'round %s  1 server + 3 clients, two ec2-create: %6.1f s\n' "$round" "$t"
  cd "$work/one-$round"
  t=$(secs ec2-create 1 --role server 3 --role client)
  ec2-killall >/dev/null 2>&1
  printf 'round %s  1 server + 3 clients, one ec2-create: %6.1f s\n' "$round" "$t"
done
