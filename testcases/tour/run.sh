#!/usr/bin/env bash
# A tour of every tool, as a load-test script would use them:
# launch, push a bundle, start the load in the background, watch it, collect, tear down.
#
#   testcases/tour/run.sh [WORKDIR]      (ec2-* tools on PATH, AWS + SSH configured)
set -euo pipefail
work=${1:-$(mktemp -d)}
mkdir -p "$work/tour" && cd "$work/tour"
trap 'ec2-killall' EXIT   # terminate everything this directory launched, whatever happens

step() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }

step "ec2-create 3: launch, wait until each accepts SSH, one descriptor per instance"
ec2-create 3 | tee instances.txt
ls i-*

step "ec2-exec-remote: the same command everywhere, output prefixed by host"
ec2-exec-remote 'echo "$(uname -s) up, load $(cut -d" " -f1 /proc/loadavg)"'

step "ec2-exec-local: once per instance, locally, with the instance in the environment"
printf '#!/bin/sh\ni=0; while [ $i -lt 3 ]; do echo "request $i ok"; i=$((i+1)); sleep 1; done\n' > load.sh
ec2-exec-local 'echo "copying to #$CURRENT_AMI_INDEX $CURRENT_AMI_ID at $CURRENT_AMI_DNS"; \
  scp -q -P "$CURRENT_SSH_PORT" ${CURRENT_SSH_KEY:+-i "$CURRENT_SSH_KEY"} \
  -o StrictHostKeyChecking=accept-new -o UserKnownHostsFile=.ec2-tools/known_hosts \
  load.sh "$CURRENT_SSH_USER@$CURRENT_AMI_DNS:load.sh"'

step "ec2-exec-remote -bg: start the load detached and return at once"
ec2-exec-remote 'sh load.sh' -bg | tee jobs.txt

step "ec2-exec-remote --from -: act on a subset piped from another tool"
head -n 2 instances.txt | ec2-exec-remote --from - 'echo "I am one of the first two"'

step "wait for the background load, then read its logs"
sleep 4
while read -r id addr log; do
  echo "$id $addr" | ec2-exec-remote --from - "cat $log"
done < jobs.txt

step "a failing host: exit codes propagate (1 = some host failed)"
if ec2-exec-remote --select 2 'echo "about to fail"; exit 4'; then echo "unexpected success"; exit 1
else echo "ec2-exec-remote exited $? as documented"; fi

step "ec2-killall: terminate everything, descriptors removed once AWS accepted"
trap - EXIT
ec2-killall
ls i-* 2>/dev/null || echo "no descriptors left"
