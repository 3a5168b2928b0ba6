#!/usr/bin/env bash
# Bake once, launch many (the ECS/Packer seed's lifecycle): one instance runs the slow setup,
# ec2-bake makes an AMI of it and records it in this case's ec2-tools.json, and the fleet
# launches ready-made from that image; results come home with ec2-get. The image outlives the
# case until `ec2-killall --images`.
#
#   testcases/baked/run.sh [WORKDIR]     (INSTANCES=3; RESULTS=s3://bucket/prefix/ to upload the
#                                         results there; ec2-* on PATH, AWS + SSH configured)
set -euo pipefail
n=${INSTANCES:-3}
work=${1:-$(mktemp -d)}
mkdir -p "$work/baked" && cd "$work/baked"
trap 'ec2-killall --images >/dev/null' EXIT   # instances and the image, whatever happens

# The "slow" setup, done once on one instance.
cat > setup.sh <<'SETUP'
#!/bin/sh
set -e
mkdir -p ~/tool && printf '#!/bin/sh\necho "tool v1 on $(hostname)"\n' > ~/tool/run && chmod +x ~/tool/run
SETUP
ec2-create 1 --setup setup.sh >/dev/null
ami=$(ec2-bake "baked-$(date +%s)-$$")
ec2-killall >/dev/null                      # the set-up instance is no longer needed

# The baked AMI is in ec2-tools.json now; an AMI in the environment would win over it.
unset EC2_TOOLS_AMI
ec2-create "$n" >/dev/null
ec2-status
ec2-exec-remote 'tool/run > result.txt'    # no setup: the tool came with the image
ec2-get result.txt results >/dev/null
cat results/*/result.txt
if [ -n "${RESULTS:-}" ]; then           # and to S3: tar+zstd per instance, then a manifest
  ec2-get result.txt "$RESULTS"
fi
echo "launched $n from $ami"
