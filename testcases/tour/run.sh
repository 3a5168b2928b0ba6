#!/usr/bin/env bash
# A tour of every tool, as a load-test script would use them: launch, push a bundle, start the
# load in the background, watch it, collect, stop/start/reboot/revert, tear down.
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

step "ec2-status: index, id, role, state, address, uptime"
ec2-status

step "ec2-exec-remote: the same command everywhere, output prefixed by host"
ec2-exec-remote --label index 'echo "$(uname -s) up as #$CURRENT_AMI_INDEX, load $(cut -d" " -f1 /proc/loadavg)"'

step "ec2-put: the load script to every instance"
printf '#!/bin/sh\ni=0; while [ $i -lt 3 ]; do echo "request $i ok"; i=$((i+1)); sleep 1; done\n' > load.sh
ec2-put load.sh .

step "ec2-exec-local: once per instance, locally; plain scp through the case's ssh_config"
echo "config for #1" > conf.txt
ec2-exec-local 'scp -q -F "$CURRENT_SSH_CONFIG" conf.txt "$CURRENT_SSH_HOST:conf-$CURRENT_AMI_INDEX.txt"'

step "ec2-exec-remote -bg: start the load detached and return at once"
ec2-exec-remote --job load -bg 'sh load.sh > result.txt; cat result.txt'
ec2-exec-remote --jobs

step "ec2-exec-remote --from -: act on a subset piped from another tool"
head -n 2 instances.txt | ec2-exec-remote --from - 'echo "I am one of the first two"'

step "ec2-exec-remote --wait: each host's exit code and log tail"
ec2-exec-remote --job load --wait

step "ec2-get: every instance's result into out/<index>-<id>/"
ec2-get result.txt out
cat out/*/result.txt | sort | uniq -c

step "ec2-ssh: one command on one instance with OpenSSH"
ec2-ssh 1 cat conf-1.txt

step "a failing host: exit codes propagate (1 = some host failed)"
if ec2-exec-remote --select 2 'echo "about to fail"; exit 4'; then echo "unexpected success"; exit 1
else echo "ec2-exec-remote exited $? as documented"; fi

step "ec2-stop / ec2-start: disks kept, addresses may change (descriptors follow)"
ec2-stop --select 3
ec2-start --select 3
ec2-exec-remote --select 3 'test -f result.txt && echo "#3 kept its disk"'

step "ec2-reboot: back when the boot id changed"
ec2-reboot --select 2

step "ec2-revert: a fresh instance from the AMI in place of #1 (same index)"
ec2-revert --select 1
ec2-exec-remote --select 1 'test -f result.txt || echo "#1 is fresh"'

step "ec2-killall: terminate everything, descriptors removed once AWS accepted"
trap - EXIT
ec2-killall
ls i-* 2>/dev/null || echo "no descriptors left"
