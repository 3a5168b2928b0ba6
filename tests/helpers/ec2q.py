"""Independent view of the emulator for the end-to-end tests (boto3, not our Rust code).

usage: ec2q.py instances CASE        -> JSON list of {id, state, tags} tagged ec2-tools:case=CASE
       ec2q.py run CASE N [OWNER]    -> launch N instances tagged with CASE (as if by a lost run)
"""
import json
import os
import sys

import boto3

ec2 = boto3.client("ec2", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name=os.environ["AWS_REGION"])
cmd, case = sys.argv[1], sys.argv[2]
if cmd == "instances":
    out = []
    pages = ec2.get_paginator("describe_instances").paginate(
        Filters=[{"Name": "tag:ec2-tools:case", "Values": [case]}])
    for page in pages:
        for r in page["Reservations"]:
            for i in r["Instances"]:
                out.append({"id": i["InstanceId"], "state": i["State"]["Name"],
                            "tags": {t["Key"]: t["Value"] for t in i.get("Tags", [])}})
    print(json.dumps(out))
elif cmd == "run":
    n, owner = int(sys.argv[3]), sys.argv[4]
    r = ec2.run_instances(ImageId=os.environ["EC2_TOOLS_AMI"], MinCount=n, MaxCount=n,
                          SubnetId=os.environ["EC2_TOOLS_SUBNET_ID"],
                          TagSpecifications=[{"ResourceType": "instance", "Tags": [
                              {"Key": "ec2-tools:case", "Value": case},
                              {"Key": "ec2-tools:owner", "Value": owner}]}])
    print(json.dumps([i["InstanceId"] for i in r["Instances"]]))
else:
    sys.exit("unknown command " + cmd)
