#!/usr/bin/env bash
# Master/slaves, as JmeterAwsConf runs JMeter: always one master, N slaves, and every slave is
# told the master's address. Roles keep indexes unique within the case, and every tool can
# act on one role (--role) or on some indexes (--select).
#
#   testcases/master-slaves/run.sh [WORKDIR]    (SLAVES=3; ec2-* on PATH, AWS + SSH configured)
set -euo pipefail
slaves=${SLAVES:-3}
work=${1:-$(mktemp -d)}
mkdir -p "$work/master-slaves" && cd "$work/master-slaves"
trap 'ec2-killall >/dev/null' EXIT   # never leave an instance running, whatever happens

# "ensure" semantics: running this script twice never grows the fleet.
ec2-create 1 --role master >/dev/null
ec2-create "$slaves" --role slave >/dev/null
ec2-status

# The master's private address (what slaves inside the VPC reach it by, on AWS as here)
# reaches the slaves as a file: instance data is never pasted into a remote command line.
ec2-exec-local -q --label none --role master 'echo "$CURRENT_AMI_PRIVATE_IP"' > master.addr
ec2-put --role slave master.addr .

ec2-exec-remote --role master 'echo "master ready"'
ec2-exec-remote --role slave 'echo "slave reporting to master at $(cat master.addr)"'
