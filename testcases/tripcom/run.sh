#!/usr/bin/env bash
# TripCom's sample test case (seed 003, "Sample Deployment Script"), ported to ec2-tools:
# two instances, copy the kernel bundle to each, unpack it there, check it.
#
#   testcases/tripcom/run.sh [WORKDIR]      (ec2-* tools on PATH, AWS + SSH configured)
#
# The original ran `scp ../kernel.zip tripcom@$CURRENT_AMI_DNS:...` through ec2execall; here
# ec2-exec-local runs it once per instance with the instance in its environment.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=${1:-$(mktemp -d)}
mkdir -p "$work" && cd "$work"

# The "kernel": a zip bundle with a validation script.
rm -rf kernel && mkdir -p kernel
printf '#!/bin/sh\necho "kernel up on $(uname -n), $(ls | wc -l) files"\n' > kernel/validate.sh
chmod +x kernel/validate.sh
(cd kernel && zip -q -r ../kernel.zip .)

mkdir -p testcase1 && cd testcase1
trap 'ec2-killall >/dev/null' EXIT   # never leave an instance running, whatever happens

ec2-create 2
ec2-exec-local 'scp -q -P "$CURRENT_SSH_PORT" ${CURRENT_SSH_KEY:+-i "$CURRENT_SSH_KEY"} \
  -o StrictHostKeyChecking=accept-new -o UserKnownHostsFile=../known_hosts \
  ../kernel.zip "$CURRENT_SSH_USER@$CURRENT_AMI_DNS:kernel.zip"'
ec2-exec-remote 'd=$(mktemp -d kernel.XXXXXX) && unzip -q kernel.zip -d "$d" && cd "$d" && ./validate.sh'
