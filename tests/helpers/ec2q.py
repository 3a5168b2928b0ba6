"""Independent view of the emulator for the end-to-end tests (boto3, not our Rust code).

usage: ec2q.py instances CASE        -> JSON list of {id, state, tags} tagged ec2-tools:case=CASE
       ec2q.py run CASE N OWNER      -> launch N instances tagged with CASE (as if by a lost run)
       ec2q.py race CASE N           -> the same RunInstances (one ClientToken) sent 4 times at
                                        once, as an SDK retry racing its first attempt: each
                                        answer's instance ids
       ec2q.py crowd CASE SECONDS    -> RunInstances, CreateTags and DescribeInstances from 11
                                        threads at once for SECONDS, no SDK retries: {calls,
                                        errors, launched, found} (found: tagged CASE at the end)
       ec2q.py keypairs CASE         -> names of the case's key pairs
       ec2q.py groups CASE           -> the case's security groups and their rules
                                        ([protocol, from, to, [cidr], [group or "self"]])
       ec2q.py instance ID           -> one instance: state, type, key, groups, tags, user data
                                        (decompressed; whether it was gzipped, its size),
                                        placement group
       ec2q.py placements CASE       -> the case's placement groups: name, strategy, tags
       ec2q.py images CASE           -> the images tagged with CASE: [{id, name}]
       ec2q.py token-mismatch CASE   -> one RunInstances sent twice with one ClientToken, then
                                        the token with other parameters: {same, other (code)}
       ec2q.py iam-profile NAME      -> make an instance profile (what an account's admin did)
       ec2q.py launched ID           -> what RunInstances asked for: image (id, name,
                                        architecture, owner), type, metadata options, instance
                                        profile, and each volume's size, type, encryption, tags
       ec2q.py case-tags CASE        -> the tags on each kind of resource tagged with CASE: key
                                        pairs, security groups, VPCs, placement groups
       ec2q.py iam-user NAME POLICY [DROP]
                                     -> an IAM user allowed exactly POLICY's actions (minus
                                        DROP), on every resource: moto evaluates neither
                                        resources nor conditions. Its key's secret is given to
                                        the EC2 front (which signs again what it changes).
                                        Prints {key, secret}
       ec2q.py enforce-iam -         -> from now on moto checks every call against IAM
       ec2q.py ssm-iam CASE          -> the roles and instance profiles named for CASE
                                        ({roles: [{name, path, policies}], profiles: [names]})
"""
import json
import os
import sys

import boto3
from botocore.config import Config

# The helper asks with the test case's key, so its faults (30 % throttling) apply to it too:
# retried as patiently as the tools are.
ec2 = boto3.client("ec2", endpoint_url=os.environ["AWS_ENDPOINT_URL"],
                   region_name=os.environ["AWS_REGION"],
                   config=Config(retries={"max_attempts": 12, "mode": "standard"}))
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
elif cmd == "race":
    import threading
    n, token, answers = int(sys.argv[3]), "race-" + case, []

    def launch():
        r = ec2.run_instances(ImageId=os.environ["EC2_TOOLS_AMI"], MinCount=n, MaxCount=n,
                              SubnetId=os.environ["EC2_TOOLS_SUBNET_ID"], ClientToken=token,
                              TagSpecifications=[{"ResourceType": "instance", "Tags": [
                                  {"Key": "ec2-tools:case", "Value": case}]}])
        answers.append(sorted(i["InstanceId"] for i in r["Instances"]))
    threads = [threading.Thread(target=launch) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps(answers))
elif cmd == "crowd":
    import threading
    import time
    import uuid
    import botocore.config
    stop = time.monotonic() + float(sys.argv[3])
    tag = [{"ResourceType": "instance", "Tags": [{"Key": "ec2-tools:case", "Value": case}]}]
    lock, calls, errors, launched = threading.Lock(), [0], [], []

    def client():
        return boto3.client("ec2", endpoint_url=os.environ["AWS_ENDPOINT_URL"],
                            region_name=os.environ["AWS_REGION"],
                            config=botocore.config.Config(retries={"max_attempts": 1}))

    def launch(c, n):
        r = c.run_instances(ImageId=os.environ["EC2_TOOLS_AMI"], MinCount=n, MaxCount=n,
                            SubnetId=os.environ["EC2_TOOLS_SUBNET_ID"],
                            ClientToken=str(uuid.uuid4()), TagSpecifications=tag)
        ids = [i["InstanceId"] for i in r["Instances"]]
        with lock:
            launched.extend(ids)
        return ids
    ids = launch(client(), 20)

    def loop(work):
        c, n = client(), 0
        while time.monotonic() < stop:
            n += 1
            try:
                work(c, n)
            except Exception as e:  # noqa: BLE001 - every failure is the finding
                with lock:
                    errors.append("%s: %s" % (work.__name__, str(e)[:120]))
            with lock:
                calls[0] += 1

    def tagger(c, n):
        c.create_tags(Resources=ids, Tags=[{"Key": "k%d" % (n % 45), "Value": "v"}])

    def describer(c, n):
        c.describe_instances(InstanceIds=ids)

    def launcher(c, n):  # new tagged resources, while moto iterates its tag table in answers
        launch(c, 1)
    work = [tagger] * 3 + [describer] * 6 + [launcher] * 2
    threads = [threading.Thread(target=loop, args=(w,)) for w in work]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    pages = ec2.get_paginator("describe_instances").paginate(
        Filters=[{"Name": "tag:ec2-tools:case", "Values": [case]}])
    found = [i["InstanceId"] for p in pages for r in p["Reservations"] for i in r["Instances"]]
    for k in range(0, len(found), 500):
        ec2.terminate_instances(InstanceIds=found[k:k + 500])
    print(json.dumps({"calls": calls[0], "errors": errors[:5], "launched": len(launched),
                      "found": len(found)}))
elif cmd == "keypairs":
    out = [k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"] if k["KeyName"].startswith("ec2-tools-" + case + "-")]
    print(json.dumps(out))
elif cmd == "groups":
    out = []
    for g in ec2.describe_security_groups()["SecurityGroups"]:
        if g["GroupName"].startswith("ec2-tools-" + case + "-"):
            rules = sorted(
                [[p.get("IpProtocol"), p.get("FromPort"), p.get("ToPort"),
                  [r["CidrIp"] for r in p.get("IpRanges", [])],
                  ["self" if u["GroupId"] == g["GroupId"] else u["GroupId"]
                   for u in p.get("UserIdGroupPairs", [])]]
                 for p in g["IpPermissions"]], key=json.dumps)
            out.append({"id": g["GroupId"], "name": g["GroupName"], "rules": rules})
    print(json.dumps(out))
elif cmd == "instance":
    i = ec2.describe_instances(InstanceIds=[case])["Reservations"][0]["Instances"][0]
    attr = lambda a: ec2.describe_instance_attribute(InstanceId=case, Attribute=a)
    ud = attr("userData").get("UserData", {}).get("Value")
    sb = attr("instanceInitiatedShutdownBehavior").get("InstanceInitiatedShutdownBehavior", {}).get("Value")
    import base64
    import gzip
    raw = base64.b64decode(ud) if ud else None
    gz = bool(raw and raw[:2] == b"\x1f\x8b")
    print(json.dumps({"state": i["State"]["Name"], "type": i["InstanceType"], "key": i.get("KeyName"),
                      "groups": [g["GroupId"] for g in i.get("SecurityGroups", [])],
                      "lifecycle": i.get("InstanceLifecycle"),
                      "tags": {t["Key"]: t["Value"] for t in i.get("Tags", [])},
                      "user_data": (gzip.decompress(raw) if gz else raw).decode() if raw else None,
                      "user_data_gzipped": gz, "user_data_bytes": len(raw) if raw else 0,
                      "shutdown_behavior": sb,
                      "placement_group": i.get("Placement", {}).get("GroupName")}))
elif cmd == "drop-default-vpc":  # CASE is the region here
    r = boto3.client("ec2", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name=case)
    for v in r.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"]:
        vid = v["VpcId"]
        for s in r.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vid]}])["Subnets"]:
            r.delete_subnet(SubnetId=s["SubnetId"])
        for g in r.describe_internet_gateways(
                Filters=[{"Name": "attachment.vpc-id", "Values": [vid]}])["InternetGateways"]:
            r.detach_internet_gateway(InternetGatewayId=g["InternetGatewayId"], VpcId=vid)
            r.delete_internet_gateway(InternetGatewayId=g["InternetGatewayId"])
        r.delete_vpc(VpcId=vid)
    print("[]")
elif cmd == "networks":  # the case's tagged VPCs in REGION (argv[3]) and what is in them
    r = boto3.client("ec2", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name=sys.argv[3])
    out = []
    for v in r.describe_vpcs(Filters=[{"Name": "tag:ec2-tools:case", "Values": [case]}])["Vpcs"]:
        f = [{"Name": "vpc-id", "Values": [v["VpcId"]]}]
        out.append({"vpc": v["VpcId"], "cidr": v["CidrBlock"],
                    "tags": {t["Key"]: t["Value"] for t in v.get("Tags", [])},
                    "subnets": [[s["CidrBlock"], s["AvailabilityZone"], s.get("MapPublicIpOnLaunch")]
                                for s in r.describe_subnets(Filters=f)["Subnets"]],
                    "gateways": len(r.describe_internet_gateways(
                        Filters=[{"Name": "attachment.vpc-id", "Values": [v["VpcId"]]}])["InternetGateways"]),
                    "routes": [rt["DestinationCidrBlock"] for t in r.describe_route_tables(Filters=f)["RouteTables"]
                               for rt in t["Routes"] if rt.get("GatewayId", "").startswith("igw-")]})
    print(json.dumps(out))
elif cmd == "mkbucket":  # CASE is the bucket here
    boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"],
                 region_name=os.environ["AWS_REGION"]).create_bucket(Bucket=case)
    print("[]")
elif cmd == "objects":  # BUCKET PREFIX -> [{key, size}]
    s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"],
                      region_name=os.environ["AWS_REGION"])
    objs = s3.list_objects_v2(Bucket=case, Prefix=sys.argv[3]).get("Contents", [])
    print(json.dumps([{"key": o["Key"], "size": o["Size"]} for o in objs]))
elif cmd == "fetch":  # BUCKET KEY FILE
    boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"],
                 region_name=os.environ["AWS_REGION"]).download_file(case, sys.argv[3], sys.argv[4])
    print("[]")
elif cmd == "ssm-iam":
    iam = boto3.client("iam", endpoint_url=os.environ["AWS_ENDPOINT_URL"],
                       region_name=os.environ["AWS_REGION"])
    mine = lambda n: n.startswith("ec2-tools-" + case + "-")
    roles = [{"name": r["RoleName"], "path": r["Path"],
              "policies": [p["PolicyName"] for p in
                           iam.list_attached_role_policies(RoleName=r["RoleName"])["AttachedPolicies"]]}
             for r in iam.list_roles()["Roles"] if mine(r["RoleName"])]
    profiles = [p["InstanceProfileName"] for p in iam.list_instance_profiles()["InstanceProfiles"]
                if mine(p["InstanceProfileName"])]
    print(json.dumps({"roles": roles, "profiles": profiles}))
elif cmd == "placements":
    out = [{"name": g["GroupName"], "strategy": g["Strategy"],
            "tags": {t["Key"]: t["Value"] for t in g.get("Tags", [])}}
           for g in ec2.describe_placement_groups()["PlacementGroups"]
           if g["GroupName"].startswith("ec2-tools-" + case + "-")]
    print(json.dumps(out))
elif cmd == "images":
    r = ec2.describe_images(Owners=["self"],
                            Filters=[{"Name": "tag:ec2-tools:case", "Values": [case]}])
    print(json.dumps([{"id": i["ImageId"], "name": i.get("Name"),
                       "tags": {t["Key"]: t["Value"] for t in i.get("Tags", [])}}
                      for i in r["Images"]]))
elif cmd == "token-mismatch":
    from botocore.exceptions import ClientError
    token = "mismatch-" + case

    def launch(n):
        r = ec2.run_instances(ImageId=os.environ["EC2_TOOLS_AMI"], MinCount=1, MaxCount=n,
                              SubnetId=os.environ["EC2_TOOLS_SUBNET_ID"], ClientToken=token,
                              TagSpecifications=[{"ResourceType": "instance", "Tags": [
                                  {"Key": "ec2-tools:case", "Value": case}]}])
        return sorted(i["InstanceId"] for i in r["Instances"])
    first, again = launch(1), launch(1)
    try:
        launch(2)
        other = "accepted"
    except ClientError as e:
        other = e.response["Error"]["Code"]
    ec2.terminate_instances(InstanceIds=first)
    print(json.dumps({"same": first == again, "other": other}))
elif cmd == "iam-profile":  # CASE is the profile's name here
    iam = boto3.client("iam", endpoint_url=os.environ["AWS_ENDPOINT_URL"],
                       region_name=os.environ["AWS_REGION"])
    print(json.dumps(iam.create_instance_profile(InstanceProfileName=case)["InstanceProfile"]["Arn"]))
elif cmd == "launched":  # CASE is the instance id here
    i = ec2.describe_instances(InstanceIds=[case])["Reservations"][0]["Instances"][0]
    vols = ec2.describe_volumes(
        Filters=[{"Name": "attachment.instance-id", "Values": [case]}])["Volumes"]
    dot = {m["Ebs"]["VolumeId"]: m["Ebs"].get("DeleteOnTermination")
           for m in i.get("BlockDeviceMappings", []) if "Ebs" in m}
    img = ec2.describe_images(ImageIds=[i["ImageId"]])["Images"][0]
    print(json.dumps({
        "image": {"id": img["ImageId"], "name": img.get("Name"),
                  "architecture": img.get("Architecture"), "owner": img.get("OwnerId")},
        "type": i["InstanceType"],
        "metadata": i.get("MetadataOptions", {}),
        "profile": i.get("IamInstanceProfile", {}).get("Arn"),
        "volumes": [{"size": v["Size"], "type": v["VolumeType"], "encrypted": v["Encrypted"],
                     "device": v["Attachments"][0]["Device"],
                     "delete_on_termination": dot.get(v["VolumeId"]),
                     "tags": {t["Key"]: t["Value"] for t in v.get("Tags", [])}} for v in vols],
    }))
elif cmd == "case-tags":
    by_case = [{"Name": "tag:ec2-tools:case", "Values": [case]}]

    def tags(items, key="Tags"):
        return [{t["Key"]: t["Value"] for t in x.get(key, [])} for x in items]
    print(json.dumps({
        "key_pairs": tags(ec2.describe_key_pairs(Filters=by_case)["KeyPairs"]),
        "security_groups": tags(ec2.describe_security_groups(Filters=by_case)["SecurityGroups"]),
        "vpcs": tags(ec2.describe_vpcs(Filters=by_case)["Vpcs"]),
        "placement_groups": tags(
            ec2.describe_placement_groups(Filters=by_case)["PlacementGroups"]),
    }))
elif cmd == "iam-user":  # CASE is the user's name here
    doc = json.load(open(sys.argv[3]))
    drop = sys.argv[4] if len(sys.argv) > 4 else None
    acts = set()
    for st in doc["Statement"]:
        a = st["Action"]
        acts.update([a] if isinstance(a, str) else a)
    acts.discard(drop)
    iam = boto3.client("iam", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name="us-east-1")
    iam.create_user(UserName=case)
    iam.put_user_policy(UserName=case, PolicyName="ec2-tools", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": sorted(acts), "Resource": "*"}]}))
    k = iam.create_access_key(UserName=case)["AccessKey"]
    import urllib.request
    urllib.request.urlopen(urllib.request.Request(
        os.environ["AWS_ENDPOINT_URL"] + "/__proxy/secret?key=" + k["AccessKeyId"],
        data=json.dumps({"secret": k["SecretAccessKey"]}).encode(), method="POST")).read()
    print(json.dumps({"key": k["AccessKeyId"], "secret": k["SecretAccessKey"]}))
elif cmd == "enforce-iam":
    import urllib.request
    urllib.request.urlopen(urllib.request.Request(
        os.environ["LOCALCLOUD_MOTO_URL"] + "/moto-api/reset-auth", data=b"0",
        headers={"Content-Type": "text/plain"}, method="POST")).read()
    print("{}")
else:
    sys.exit("unknown command " + cmd)
