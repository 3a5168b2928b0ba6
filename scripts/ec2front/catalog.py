"""What AWS publishes for every account and moto does not: the public SSM parameters naming the
latest Ubuntu and Debian images (moto has only Amazon Linux's), the Service Quotas of EC2's
running-instance vCPUs, the Price List API's on-demand prices and a spot price history. Each is
a small table written down here, so that a test knows the figures it asserts; none is a real
price or a real account's quota (README, "Known differences").

What does not belong here: faults (faults.py), anything an instance does (machines.py).

Run as `python -m ec2front.catalog write-amis PATH` (localcloud does, before moto starts): the
image list moto loads (MOTO_AMIS_PATH) -- moto's own, every region's latest Amazon images, and
the Canonical and Debian images the parameters below name."""
import gzip
import hashlib
import json
import os
import sys
import time

CANONICAL, DEBIAN = "099720109477", "136693071363"
ARCHES = {"amd64": "x86_64", "arm64": "arm64"}


def ami_id(name):
    """A stable AMI id for an image name (17 hex digits, as new AMI ids have)."""
    return "ami-0" + hashlib.sha256(name.encode()).hexdigest()[:16]


def _public_images():
    """(parameter name, image) for each Canonical and Debian image the local cloud has."""
    out = []
    for version, codename, disk in (("24.04", "noble", "gp3"), ("22.04", "jammy", "gp2")):
        for deb, arch in ARCHES.items():
            ssd = "hvm-ssd-gp3" if disk == "gp3" else "hvm-ssd"
            name = f"ubuntu/images/{ssd}/ubuntu-{codename}-{version}-{deb}-server-20261115"
            param = (f"/aws/service/canonical/ubuntu/server/{version}/stable/current/{deb}"
                     f"/hvm/ebs-{disk}/ami-id")
            out.append((param, _image(name, arch, CANONICAL, "/dev/sda1",
                                      f"Canonical, Ubuntu, {version} LTS, {deb} {codename}")))
    for deb, arch in ARCHES.items():
        name = f"debian-12-{deb}-20261110-2311"
        out.append((f"/aws/service/debian/release/12/latest/{deb}",
                     _image(name, arch, DEBIAN, "/dev/xvda", f"Debian 12 (20261110-2311)")))
    return out


def _image(name, arch, owner, root, description):
    return {
        "ami_id": ami_id(name), "state": "available", "public": True, "owner_id": owner,
        "image_location": f"{owner}/{name}", "sriov": "simple", "root_device_type": "ebs",
        "root_device_name": root, "description": description, "image_type": "machine",
        "platform": None, "architecture": arch, "name": name, "virtualization_type": "hvm",
        "hypervisor": "xen", "creation_date": "2026-11-15T00:00:00.000Z",
    }


PARAMETERS = dict((p, img["ami_id"]) for p, img in _public_images())


def write_amis(path):
    import moto
    res = os.path.join(os.path.dirname(moto.__file__), "ec2", "resources")
    with gzip.open(os.path.join(res, "amis.json.gz")) as f:
        images = json.load(f)
    latest = os.path.join(res, "latest_amis")
    for name in sorted(os.listdir(latest)):
        with gzip.open(os.path.join(latest, name)) as f:
            images.extend(json.load(f))
    seen, out = set(), []
    for img in images + [img for _, img in _public_images()]:
        if img["ami_id"] not in seen:
            seen.add(img["ami_id"])
            out.append(img)
    with open(path, "w") as f:
        json.dump(out, f)


# --- Service Quotas ----------------------------------------------------------------------------
# EC2's running-instance vCPU quotas, by code (the local cloud's defaults: large enough for the
# benchmarks' thousand instances; a caller's faults set {"quotas": {"L-1216C47A": 8}} to lower).
QUOTAS = {
    "L-1216C47A": ("Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances", 4096.0),
    "L-34B43A08": ("All Standard (A, C, D, H, I, M, R, T, Z) Spot Instance Requests", 4096.0),
    "L-DB2E81BA": ("Running On-Demand G and VT instances", 64.0),
    "L-3819A6DF": ("All G and VT Spot Instance Requests", 64.0),
    "L-417A185B": ("Running On-Demand P instances", 0.0),
    "L-7212CCBC": ("All P4, P3 and P2 Spot Instance Requests", 0.0),
    "L-1945791B": ("Running On-Demand F instances", 0.0),
    "L-88CF9481": ("All F Spot Instance Requests", 0.0),
    "L-7295265B": ("Running On-Demand X instances", 0.0),
    "L-E3A00192": ("All X Spot Instance Requests", 0.0),
}


def get_service_quota(req, region, account, overrides):
    code = req.get("QuotaCode", "")
    if req.get("ServiceCode") != "ec2" or code not in QUOTAS:
        return 400, {"__type": "NoSuchResourceException",
                     "Message": f"The request failed because the specified quota {code} does "
                                f"not exist for service {req.get('ServiceCode')}."}
    name, value = QUOTAS[code]
    value = float(overrides.get(code, value))
    return 200, {"Quota": {
        "ServiceCode": "ec2", "ServiceName": "Amazon Elastic Compute Cloud (Amazon EC2)",
        "QuotaArn": f"arn:aws:servicequotas:{region}:{account}:ec2/{code}",
        "QuotaCode": code, "QuotaName": name, "Value": value, "Unit": "None",
        "Adjustable": True, "GlobalQuota": False,
    }}


# --- Prices ------------------------------------------------------------------------------------
# On-demand Linux prices, USD per hour, as the Price List API listed them for us-east-1 in 2026
# (the local cloud answers these for every region); spot's history is a fixed fraction of them.
ON_DEMAND = {
    "t3.nano": "0.0052", "t3.micro": "0.0104", "t3.small": "0.0208", "t3.medium": "0.0416",
    "t3.large": "0.0832", "t4g.micro": "0.0084", "t4g.small": "0.0168", "t4g.medium": "0.0336",
    "m5.large": "0.0960", "m6i.large": "0.0960", "m7i.large": "0.1008", "m7g.large": "0.0816",
    "c5.large": "0.0850", "c6i.large": "0.0850", "c7i.large": "0.0893", "c7g.large": "0.0725",
    "c7g.xlarge": "0.1450", "c7gn.large": "0.0999", "r6i.large": "0.1260",
}
SPOT_FRACTION = 0.35


def get_products(req, overrides):
    """GetProducts: the products matching every TERM_MATCH filter (instanceType is the one the
    table keys on; the others are accepted as the Linux/shared/no-software product)."""
    filters = {f.get("Field"): f.get("Value") for f in req.get("Filters", [])}
    itype = filters.get("instanceType")
    prices = dict(ON_DEMAND, **overrides)
    if req.get("ServiceCode") != "AmazonEC2" or itype not in prices:
        return 200, {"FormatVersion": "aws_v1", "PriceList": []}
    sku = hashlib.sha256(itype.encode()).hexdigest()[:16].upper()
    product = {
        "product": {"productFamily": "Compute Instance", "sku": sku, "attributes": {
            "instanceType": itype, "regionCode": filters.get("regionCode", "us-east-1"),
            "operatingSystem": "Linux", "tenancy": "Shared", "preInstalledSw": "NA",
            "capacitystatus": "Used"}},
        "serviceCode": "AmazonEC2",
        "terms": {"OnDemand": {f"{sku}.JRTCKXETXF": {
            "offerTermCode": "JRTCKXETXF", "sku": sku,
            "priceDimensions": {f"{sku}.JRTCKXETXF.6YS6EN2CT7": {
                "unit": "Hrs", "pricePerUnit": {"USD": prices[itype]},
                "description": f"${prices[itype]} per On Demand Linux {itype} Instance Hour"}},
        }}},
    }
    return 200, {"FormatVersion": "aws_v1", "PriceList": [json.dumps(product)]}


def spot_price(itype, overrides):
    """The spot price the history shows for `itype` (None: the table has none)."""
    p = dict(ON_DEMAND, **overrides).get(itype)
    return None if p is None else "%.6f" % (float(p) * SPOT_FRACTION)


# --- SSM ---------------------------------------------------------------------------------------
def get_parameters(target, req, region):
    """GetParameter(s) for the public parameters above (None: not ours, moto answers)."""
    names = [req.get("Name")] if target == "GetParameter" else list(req.get("Names") or [])
    if not names or not all(n in PARAMETERS for n in names):
        return None
    params = [{
        "Name": n, "Type": "String", "Value": PARAMETERS[n], "Version": 1,
        "LastModifiedDate": time.mktime((2026, 11, 15, 0, 0, 0, 0, 0, 0)),
        "ARN": f"arn:aws:ssm:{region}::parameter{n}", "DataType": "aws:ec2:image",
    } for n in names]
    if target == "GetParameter":
        return 200, {"Parameter": params[0]}
    return 200, {"Parameters": params, "InvalidParameters": []}


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "write-amis":
        write_amis(sys.argv[2])
    else:
        sys.exit("usage: python -m ec2front.catalog write-amis PATH")
