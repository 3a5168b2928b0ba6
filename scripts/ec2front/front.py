""""""
import argparse
import base64
from dataclasses import dataclass, field
import http.client
import http.server
import json
import os
import re
import signal
import threading
import time
import urllib.parse
import uuid
import xml.etree.ElementTree as ET

from . import catalog, faults, placement, ssm, userdata
from .cloud import Answer, Cloud, InFlight, Instance
from .common import LOCK, error_xml, ids_in, log, parse, serialize, spread
from .firewall import Firewall
from .machines import Machines

LIFECYCLE = ("TerminateInstances", "StopInstances", "StartInstances", "RebootInstances")
# The calls after which the security groups' rules are made again (firewall.py); the caller of
# those that change a group's rules gets its answer once they are in force.
RULES_NOW = ("AuthorizeSecurityGroupIngress", "RevokeSecurityGroupIngress",
             "ModifyInstanceAttribute", "ModifyNetworkInterfaceAttribute", "DeleteSecurityGroup")
RULES_SOON = ("RunInstances",) + LIFECYCLE


class RuleSync:
    """One thread that makes the rules again from moto's answers, as often as asked but never
    two at once: requests that arrive while it works are served by its next pass."""

    def __init__(self, firewall, machines):
        self.firewall, self.machines = firewall, machines
        self.cv = threading.Condition()
        self.want = self.done = 0
        self.fetch = None
        if firewall.on:
            threading.Thread(target=self.loop, daemon=True).start()

    def request(self, fetch, wait):
        if not self.firewall.on:
            return
        with self.cv:
            self.want += 1
            ticket, self.fetch = self.want, fetch
            self.cv.notify_all()
            if wait:
                self.cv.wait_for(lambda: self.done >= ticket, timeout=10)

    def loop(self):
        while True:
            with self.cv:
                self.cv.wait_for(lambda: self.want > self.done)
                target, fetch = self.want, self.fetch
            try:
                found = fetch()
                if found:
                    with LOCK:
                        machines = dict(self.machines.ip)
                    self.firewall.apply(found[0], found[1], machines)
            except Exception as e:  # noqa: BLE001 - the old rules stay; logged
                log("security group rules not made again: %s" % e)
            with self.cv:
                self.done = target
                self.cv.notify_all()


@dataclass
class Call:
    """One EC2 action as received, and what the front decided about it on the way: the
    capacity pool it draws on, the placement group it launches into, the snapshot tags it
    applies after moto. Nothing of this travels in the request's parameters."""
    method: str
    body: bytes
    params: dict
    action: str
    key: str
    caller: object
    # The request as sent, before anything adjusts it: what a ClientToken stands for.
    sent: dict
    pool: dict = None
    placement: str = None
    snapshot_tags: list = field(default_factory=list)

    def encode(self):
        """The (adjusted) parameters as the body moto gets."""
        self.body = urllib.parse.urlencode(self.params).encode()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "AmazonEC2"

    def log_message(self, *a):
        pass

    def do_GET(self):
        self.handle_any("GET")

    def do_POST(self):
        self.handle_any("POST")

    def do_PUT(self):
        self.handle_any("PUT")

    def do_DELETE(self):
        self.handle_any("DELETE")

    def do_HEAD(self):
        self.handle_any("HEAD")

    @property
    def cloud(self):
        return self.server.cloud

    def reply(self, status, body, ctype="text/xml;charset=UTF-8", headers=()):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def fail(self, fault):
        return self.reply(fault.status, error_xml(fault.code, fault.message))

    def control(self, body):
        url = urllib.parse.urlparse(self.path)
        key = urllib.parse.parse_qs(url.query).get("key", [""])[0]
        if url.path == "/__proxy/faults":
            self.cloud.configure(key, json.loads(body or b"{}"))
            return self.reply(200, b"{}", "application/json")
        if url.path == "/__proxy/secret":
            # The secret of an IAM user's key (a test made it): the front signs again what it
            # changed on the way, so that moto, enforcing IAM, can check the signature.
            with LOCK:
                self.cloud.secrets[key] = json.loads(body)["secret"]
            return self.reply(200, b"{}", "application/json")
        if url.path == "/__proxy/kill-machine":
            # A machine crashes (the soak: an sshd killed mid-command); EC2 still says running.
            self.server.machines.halt(json.loads(body)["id"])
            return self.reply(200, b"{}", "application/json")
        if url.path == "/__proxy/counters":
            c = self.cloud.caller(key)
            with LOCK:
                body = json.dumps(c.counters).encode()
            return self.reply(200, body, "application/json")
        self.reply(404, b"{}", "application/json")

    def handle_any(self, method):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        if self.path.startswith("/__proxy/"):
            return self.control(body)
        target = self.headers.get("X-Amz-Target", "")
        if target:
            return self.json_call(target, body)
        call = self.parse_call(method, body)
        if call is None:
            return self.forward(method, body)
        c = call.caller
        with LOCK:
            c.count("calls", call.action)
        pause = c.latency(call.action)
        if pause:
            time.sleep(pause)
        fault = faults.choose(c, call, self.cloud)
        if fault:
            with LOCK:
                c.count("faults", fault.code)
            return self.fail(fault)
        if call.action == "RunInstances" and call.params.get("ClientToken"):
            return self.once_per_token(call)
        self.serve(call)

    def json_call(self, target, body):
        """A JSON-protocol call (SSM, Service Quotas, Price List): what AWS publishes and moto
        lacks is answered from catalog.py, under the caller's `deny` and counters; the rest
        goes to moto."""
        service, _, action = target.partition(".")
        m = re.search(r"Credential=([^/]+)/[^/]+/([^/]+)/", self.headers.get("Authorization", ""))
        key, region = (m.group(1), m.group(2)) if m else ("", "us-east-1")
        c = self.cloud.caller(key)
        with LOCK:
            c.count("calls", action)
        if action in c.faults.get("deny", ()):
            with LOCK:
                c.count("faults", "AccessDenied")
            return self.json_reply(400, {
                "__type": "AccessDeniedException",
                "Message": f"User is not authorized to perform: {action}"})
        req = json.loads(body or b"{}")
        answer = None
        fault = faults.json_fault(c, action)
        if fault:
            with LOCK:
                c.count("faults", fault.code)
            return self.json_reply(400, {"__type": fault.code, "message": fault.message})
        if service == "AmazonSSM" and action in ssm.ACTIONS:
            answer = self.server.ssm.call(action, req, key, region, c)
        elif service == "AmazonSSM" and action in ("GetParameter", "GetParameters"):
            answer = catalog.get_parameters(action, req, region)
        elif service.startswith("ServiceQuotas") and action == "GetServiceQuota":
            answer = catalog.get_service_quota(req, region, "123456789012",
                                               c.faults.get("quotas", {}))
        elif service == "AWSPriceListService" and action == "GetProducts":
            answer = catalog.get_products(req, c.faults.get("prices", {}))
        if answer is None:
            return self.forward("POST", body)
        return self.json_reply(*answer)

    def json_reply(self, status, doc):
        self.reply(status, json.dumps(doc).encode(), "application/x-amz-json-1.1")

    def parse_call(self, method, body):
        """The EC2 action in this request (None: not one, e.g. S3)."""
        params = {}
        if method == "POST" and "x-www-form-urlencoded" in self.headers.get("Content-Type", ""):
            params = dict(urllib.parse.parse_qsl(body.decode(), keep_blank_values=True))
        action = params.get("Action")
        if action is None:
            return None
        m = re.search(r"Credential=([^/]+)/", self.headers.get("Authorization", ""))
        key = m.group(1) if m else ""
        sent = {k: v for k, v in params.items() if k != "ClientToken"}
        return Call(method, body, params, action, key, self.cloud.caller(key), sent)

    def once_per_token(self, call):
        """RunInstances idempotency by ClientToken, as AWS has it (moto ignores tokens): a
        retry that arrives while the first request is still served (an SDK attempt timeout
        under load) waits for it and gets its answer again, never a second launch; the same
        token with other parameters is IdempotentParameterMismatch."""
        cloud, c = self.cloud, call.caller
        tk = (call.key, call.params["ClientToken"])
        owner = None
        while True:
            with LOCK:
                cached = cloud.tokens.get(tk)
                inflight = None if cached else cloud.inflight.get(tk)
                if not cached and inflight is None:
                    owner = threading.Event()
                    cloud.inflight[tk] = InFlight(owner, call.sent)
            if cached or owner:
                break
            if inflight.sent != call.sent:
                break
            inflight.done.wait(300)
        first = cached.sent if cached else (inflight.sent if inflight else call.sent)
        if first != call.sent:
            with LOCK:
                c.count("faults", "IdempotentParameterMismatch")
            return self.reply(400, error_xml(
                "IdempotentParameterMismatch",
                "The client token you have provided is associated with a resource that is "
                "already deleted or has different parameters. Use a new client token."))
        if cached:
            with LOCK:
                c.count("faults", "IdempotentReplay")
            return self.reply(cached.status, cached.body)
        try:
            self.serve(call)
        finally:
            with LOCK:
                cloud.inflight.pop(tk, None)
            owner.set()

    def serve(self, call):
        """The call adjusted for moto, sent, its answer made AWS's (or lost on the way)."""
        if call.action in placement.ACTIONS:
            status, answer = self.cloud.placement.call(call.action, call.params,
                                                       self.cloud.instances)
            return self.reply(status, answer)
        if call.action == "GetConsoleOutput" and \
                call.params.get("InstanceId") in self.server.machines.ip:
            return self.reply(200, self.console_xml(call))
        if call.action == "DescribeSpotPriceHistory":
            # moto's history is one placeholder price from 2006: the front's table instead.
            return self.reply(200, spot_history_xml(call.params, call.caller))
        if call.action == "CreateImage":
            # moto refuses snapshot tags in CreateImage; AWS takes them: the front strips them
            # and tags the image's snapshots itself once moto made them (after_create_image).
            call.params, call.snapshot_tags = split_snapshot_tags(call.params)
            call.encode()
        if call.action in ("RunInstances", "AssociateIamInstanceProfile"):
            refused = self.profile_unseen(call) or (call.action == "RunInstances" and
                                                    self.prepare_run_instances(call))
            if refused:
                return self.fail(refused)
        status, headers, answer = self.upstream(call.method, call.body)
        if call.action in ("RunInstances", "AssociateIamInstanceProfile") and \
                b"<Code>NoSuchEntity</Code>" in answer:
            # moto answers an unknown instance profile in IAM's words; EC2 in its own.
            return self.fail(unknown_profile(profile_name(call.params), call.params))
        if status == 200 and call.action in ("CreateInstanceProfile", "AddRoleToInstanceProfile"):
            self.profile_made(call)
        if status == 200:
            answer = self.after(call, answer)
            if call.pool is not None:
                with LOCK:
                    call.pool["available"] -= answer.count(b"<instanceId>")
        if status == 200 and call.action in RULES_NOW + RULES_SOON:
            hdrs = dict(self.headers.items())
            self.server.rules.request(lambda: self.fetch_rules(hdrs), call.action in RULES_NOW)
        if status == 200 and call.caller.loses(call.action):
            with LOCK:
                call.caller.count("faults", "InternalErrorAfterWork")
            return self.fail(faults.INTERNAL)
        self.reply(status, answer, headers.get("Content-Type", "text/xml"))

    def console_xml(self, call):
        """GetConsoleOutput as AWS answers it: cloud-init's host keys once it has printed
        them (`console_s` after the machine's sshd is up; the `console_lie` fault: another
        machine's keys), no output before."""
        iid = call.params["InstanceId"]
        with LOCK:
            rec = self.cloud.instances.get(iid)
        text = None
        if rec is None or time.monotonic() >= rec.console_after:
            text = self.server.machines.console(iid, bool(call.caller.faults.get("console_lie")))
        out = "<output>%s</output>" % base64.b64encode(text.encode()).decode() if text else ""
        return ('<?xml version="1.0" encoding="UTF-8"?>\n<GetConsoleOutputResponse '
                'xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>%s</requestId>'
                "<instanceId>%s</instanceId><timestamp>%s</timestamp>%s"
                "</GetConsoleOutputResponse>"
                % (uuid.uuid4(), iid, time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
                   out)).encode()

    def profile_made(self, call):
        """An instance profile made (or given its role): EC2 sees it `iam_propagation_s` later
        (IAM is eventually consistent; AWS: seconds, users report up to a minute)."""
        name = call.params.get("InstanceProfileName", "")
        c = call.caller
        at = time.monotonic() + spread(c.faults.get("iam_propagation_s", 2), c.rng)
        with LOCK:
            self.cloud.profiles[name] = max(at, self.cloud.profiles.get(name, 0))

    def profile_unseen(self, call):
        """The fault EC2 gives for an instance profile IAM made moments ago (its own words:
        no code of its own), or None."""
        name = profile_name(call.params)
        with LOCK:
            unseen = name and time.monotonic() < self.cloud.profiles.get(name, 0)
            if unseen:
                call.caller.count("faults", "IamProfileNotVisible")
        return unknown_profile(name, call.params) if unseen else None

    def prepare_run_instances(self, call):
        """moto has no placement groups (the front keeps them) and launches MinCount instances
        where AWS launches as many as it can up to MaxCount. A fault if the group is unknown."""
        group = call.params.pop("Placement.GroupName", None)
        if group is not None:
            if not self.cloud.placement.known(group):
                return faults.Fault(400, "InvalidPlacementGroup.Unknown",
                                    "The Placement Group '%s' is unknown." % group)
            call.placement = group
        call.params["MinCount"] = call.params.get("MaxCount", call.params.get("MinCount", "1"))
        call.encode()
        return None

    def public_key(self, name):
        """The public half of a key pair, as moto stores it ("" if none)."""
        if not name:
            return ""
        body = urllib.parse.urlencode({"Action": "DescribeKeyPairs", "Version": "2016-11-15",
                                       "KeyName.1": name, "IncludePublicKey": "true"}).encode()
        status, _, answer = self.upstream("POST", body)
        if status != 200:
            return ""
        root, q = parse(answer)
        key = root.findtext(".//" + q + "publicKey") or ""
        if key and not key.startswith(("ssh-", "ecdsa-")):
            try:
                key = base64.b64decode(key).decode()
            except ValueError:
                pass
        return key.strip()

    def tag_snapshots(self, ami, tags):
        """CreateTags on the snapshots behind `ami`, upstream."""
        q = {"Action": "DescribeImages", "Version": "2016-11-15", "ImageId.1": ami}
        status, _, answer = self.upstream("POST", urllib.parse.urlencode(q).encode())
        if status != 200:
            return
        root, Q = parse(answer)
        snaps = [e.text for e in root.iter(Q + "snapshotId") if e.text]
        if not snaps:
            return
        q = {"Action": "CreateTags", "Version": "2016-11-15"}
        for n, s in enumerate(snaps, 1):
            q["ResourceId.%d" % n] = s
        for n, (k, v) in enumerate(tags, 1):
            q["Tag.%d.Key" % n], q["Tag.%d.Value" % n] = k, v
        self.upstream("POST", urllib.parse.urlencode(q).encode())

    def fetch_rules(self, hdrs):
        """DescribeInstances and DescribeSecurityGroups, upstream, as the caller whose call
        changed them (None if moto refuses)."""
        answers = []
        for action in ("DescribeInstances", "DescribeSecurityGroups"):
            q = urllib.parse.urlencode({"Action": action, "Version": "2016-11-15"}).encode()
            status, _, answer = self.upstream("POST", q, hdrs, "/")
            if status != 200:
                return None
            answers.append(answer)
        return answers

    def upstream(self, method, body, hdrs=None, path=None):
        hdrs = self.headers if hdrs is None else hdrs
        headers = {k: v for k, v in hdrs.items()
                   if k.lower() not in ("host", "connection", "content-length")}
        path = path or self.path
        body, headers = self.signed(method, body, headers, path)
        with self.cloud.upstream:
            conn = http.client.HTTPConnection("127.0.0.1", self.server.upstream_port, timeout=300)
            conn.request(method, path, body=body, headers=headers)
            r = conn.getresponse()
            data = r.read()
            conn.close()
        if r.status >= 500:
            # An emulator failure, not an injected fault: worth a line in proxy.log.
            log("moto answered %d to %s %s: %s" % (r.status, method, body[:80], data[:200]))
        return (r.status, {k: v for k, v in r.getheaders()}, data)

    def signed(self, method, body, headers, path):
        """The body and headers, signed again (SigV4) when the caller's secret is known: moto
        checks signatures when it enforces IAM, and the front may have changed the body. moto
        checks a form body as Python encodes its parameters (not as they came: an SDK may
        leave characters unescaped that Python escapes), so such a body is encoded that way."""
        named = {k.lower(): v for k, v in headers.items()}
        m = re.search(r"Credential=([^/]+)/\d+/([^/]+)/([^/]+)/", named.get("authorization", ""))
        secret = m and m.group(3) != "s3" and self.cloud.secrets.get(m.group(1))
        if not secret:
            return body, headers
        if "x-www-form-urlencoded" in named.get("content-type", ""):
            body = urllib.parse.urlencode(
                urllib.parse.parse_qsl(body.decode(), keep_blank_values=True)).encode()
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials
        keep = {k: v for k, v in headers.items()
                if k.lower() in ("content-type", "x-amz-target")}
        req = AWSRequest(method=method, data=body, headers=keep,
                         url="http://127.0.0.1:%d%s" % (self.server.upstream_port, path))
        SigV4Auth(Credentials(m.group(1), secret), m.group(3), m.group(2)).add_auth(req)
        return body, dict(req.headers.items())

    def forward(self, method, body):
        """Anything that is not an EC2 action (S3, mostly): moto's answer, headers and all
        (S3's ETag and x-amz-* headers are the answer)."""
        self.count_s3(method)
        status, headers, data = self.upstream(method, body)
        hop = ("content-type", "content-length", "transfer-encoding", "connection", "server",
               "date", "keep-alive")
        self.reply(status, data, headers.get("Content-Type", "application/octet-stream"),
                   [(k, v) for k, v in headers.items() if k.lower() not in hop])

    def count_s3(self, method):
        """An S3 request counted for the key that signed it (`S3 GET`, `S3 POST?delete`, …;
        a presigned URL a host fetched: `S3 GET (presigned)`), so a benchmark sees the calls
        a copy makes."""
        url = urllib.parse.urlparse(self.path)
        query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        presigned = "X-Amz-Credential" in query
        m = re.search(r"Credential=([^/]+)/", self.headers.get("Authorization", ""))
        key = query["X-Amz-Credential"][0].split("/")[0] if presigned else (m.group(1) if m else "")
        sub = next((q for q in ("delete", "uploads", "uploadId") if q in query), "")
        name = "S3 %s%s%s" % (method, "?" + sub if sub else "", " (presigned)" if presigned else "")
        c = self.cloud.caller(key)
        with LOCK:
            c.count("calls", name)

    def boot_s(self, c):
        """How long a machine takes from running to sshd, for caller `c`."""
        return spread(c.faults.get("boot_s", self.server.boot_s), c.rng)

    def register_s(self, c):
        """How long an instance's SSM agent takes from sshd up to registered, for caller `c`."""
        return spread(c.faults.get("ssm_register_s", 1), c.rng)

    def after(self, call, answer):
        """What AWS would have said, from what moto said; the machines follow the calls."""
        if call.action == "RunInstances":
            return self.after_run_instances(call, answer)
        if call.action in LIFECYCLE:
            self.after_lifecycle(call)
        elif call.action == "CreateImage":
            self.after_create_image(call, answer)
        elif call.action == "AssociateIamInstanceProfile":
            iid = call.params.get("InstanceId")
            with LOCK:
                rec = self.cloud.instances.get(iid)
                if rec is not None:
                    rec.profile = profile_name(call.params)
                    rec.ssm_after = max(rec.ssm_after, time.monotonic() + self.register_s(call.caller))
        elif call.action == "DescribeInstances":
            return self.rewrite_describe(answer, time.monotonic())
        return answer

    def after_run_instances(self, call, answer):
        """Each new instance pending, unknown for a while, its machine booting; the answer kept
        for its ClientToken."""
        c, f, now = call.caller, call.caller.faults, time.monotonic()
        root, Q = parse(answer)
        keys = self.public_key(call.params.get("KeyName"))
        ids = []
        for inst in root.iter(Q + "item"):
            iid = inst.findtext(Q + "instanceId")
            if not iid:
                continue
            ids.append(iid)
            pend, boot = spread(f.get("pending_s"), c.rng), self.boot_s(c)
            with LOCK:
                self.cloud.instances[iid] = Instance(
                    pending_until=now + pend,
                    hidden_until=now + spread(f.get("not_found_s"), c.rng),
                    console_after=now + pend + boot + spread(f.get("console_s"), c.rng),
                    on_shutdown=call.params.get("InstanceInitiatedShutdownBehavior", "stop"),
                    headers=dict(self.headers.items()), key=call.key,
                    profile=profile_name(call.params),
                    ssm_after=now + pend + boot + self.register_s(c))
            ip = inst.findtext(Q + "privateIpAddress")
            self.server.machines.boot(iid, ip, pend + boot, authorized=keys,
                                      image=call.params.get("ImageId"),
                                      user_data=userdata.decode(call.params.get("UserData")))
        if call.placement:
            self.cloud.placement.place(ids, call.placement)
        self.associate_profile(call, ids)
        with LOCK:
            c.counters["instances_launched"] += len(ids)
            if call.params.get("ClientToken"):
                self.cloud.tokens[(call.key, call.params["ClientToken"])] = \
                    Answer(200, answer, call.sent)
        return answer

    def associate_profile(self, call, ids):
        """moto gives a RunInstances' instance profile to one of its instances only; AWS to
        every one: the others are associated here, upstream (the one moto did refuses)."""
        profile = {k: v for k, v in call.params.items() if k.startswith("IamInstanceProfile.")}
        if not profile or len(ids) < 2:
            return
        for iid in ids:
            q = dict(profile, Action="AssociateIamInstanceProfile", Version="2016-11-15",
                     InstanceId=iid)
            self.upstream("POST", urllib.parse.urlencode(q).encode())

    def after_lifecycle(self, call):
        """Terminate: shutting-down for a while, its disk wiped; stop: halted; start and
        reboot: booted again (a new boot id)."""
        c, machines, now = call.caller, self.server.machines, time.monotonic()
        for iid in ids_in(call.params, "InstanceId"):
            if call.action == "TerminateInstances":
                with LOCK:
                    rec = self.cloud.instances.setdefault(iid, Instance())
                    rec.shutdown_until = now + spread(c.faults.get("shutting_down_s"), c.rng)
                machines.halt(iid, wipe=True)
            elif call.action == "StopInstances":
                machines.halt(iid)
            else:
                ip = machines.ip.get(iid)
                if call.action == "RebootInstances":
                    machines.halt(iid)
                if ip:
                    boot = self.boot_s(c)
                    with LOCK:
                        rec = self.cloud.instances.get(iid)
                        if rec is not None:
                            rec.ssm_after = now + boot + self.register_s(c)
                    machines.boot(iid, ip, boot)

    def after_create_image(self, call, answer):
        """The image's snapshots tagged; the instance's disk kept for the image; the instance
        rebooted unless NoReboot, as AWS does for a consistent disk."""
        machines = self.server.machines
        root, Q = parse(answer)
        ami, iid = root.findtext(Q + "imageId"), call.params.get("InstanceId")
        if ami and call.snapshot_tags:
            self.tag_snapshots(ami, call.snapshot_tags)
        if ami and iid:
            machines.bake(iid, ami)
            ip = machines.ip.get(iid)
            if call.params.get("NoReboot", "false").lower() != "true" and ip:
                machines.halt(iid)
                machines.boot(iid, ip, self.boot_s(call.caller))

    def rewrite_describe(self, answer, now):
        """DescribeInstances as AWS would answer now: instances not visible yet left out,
        pending and shutting-down shown, placement groups named."""
        with LOCK:
            hold = {i: r for i, r in self.cloud.instances.items()
                    if r.pending_until > now or r.shutdown_until > now or r.hidden_until > now}
        placed = self.cloud.placement.placed_copy()
        if not hold and not placed:
            return answer
        root, Q = parse(answer)
        for inst in root.iter(Q + "item"):
            group = placed.get(inst.findtext(Q + "instanceId") or "")
            where = inst.find(Q + "placement")
            if group and where is not None:
                name = where.find(Q + "groupName")
                if name is None:
                    name = ET.SubElement(where, Q + "groupName")
                name.text = group
        for rs in root.iter(Q + "reservationSet"):
            for res in list(rs):
                iset = res.find(Q + "instancesSet")
                for inst in list(iset) if iset is not None else []:
                    rec = hold.get(inst.findtext(Q + "instanceId"))
                    if not rec:
                        continue
                    if rec.hidden_until > now:
                        iset.remove(inst)
                        continue
                    st = inst.find(Q + "instanceState")
                    name = st.findtext(Q + "name")
                    if name == "running" and rec.pending_until > now:
                        st.find(Q + "code").text, st.find(Q + "name").text = "0", "pending"
                    if name == "terminated" and rec.shutdown_until > now:
                        st.find(Q + "code").text, st.find(Q + "name").text = "32", "shutting-down"
                if iset is not None and len(iset) == 0:
                    rs.remove(res)
        return serialize(root, Q)


def own_call(srv, headers=None):
    """A handler with no request, for the front's own calls upstream."""
    h = Handler.__new__(Handler)
    h.server, h.headers, h.path = srv, headers or {}, "/"
    return h


def power(srv, iid, kind):
    """An instance powered itself off (its user data's shutdown, the TTL part): AWS stops it,
    or terminates it when it was launched with InstanceInitiatedShutdownBehavior=terminate;
    a reboot boots it again. The calls go upstream as the instance's launcher."""
    with LOCK:
        rec = srv.cloud.instances.get(iid)
    if rec is None or rec.headers is None:
        return
    h = own_call(srv, rec.headers)
    if kind == "reboot":
        action = "RebootInstances"
    else:
        action = "TerminateInstances" if rec.on_shutdown == "terminate" else "StopInstances"
    log("%s: powered itself off (%s): %s" % (iid, kind, action))
    params = {"Action": action, "Version": "2016-11-15", "InstanceId.1": iid}
    body = urllib.parse.urlencode(params).encode()
    status, _, answer = h.upstream("POST", body, rec.headers, "/")
    if status != 200:
        log("%s: %s refused: %s" % (iid, action, answer[:200]))
        return
    call = Call("POST", body, params, action, rec.key, srv.cloud.caller(rec.key), params)
    h.after_lifecycle(call)
    srv.rules.request(lambda: h.fetch_rules(rec.headers), False)


def spot_history_xml(params, caller):
    """DescribeSpotPriceHistory from catalog.py's table: the current price in each AZ."""
    types = [v for k, v in params.items() if k.startswith("InstanceType.")]
    now = time.strftime("%Y-%m-%dT%H:00:00.000Z", time.gmtime())
    items = ""
    for t in types:
        price = catalog.spot_price(t, caller.faults.get("prices", {}))
        if price is None:
            continue
        for az in ("us-east-1a", "us-east-1b"):
            items += ("<item><instanceType>%s</instanceType><productDescription>Linux/UNIX"
                      "</productDescription><spotPrice>%s</spotPrice><timestamp>%s</timestamp>"
                      "<availabilityZone>%s</availabilityZone></item>" % (t, price, now, az))
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<DescribeSpotPriceHistoryResponse '
            'xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>%s</requestId>'
            "<spotPriceHistorySet>%s</spotPriceHistorySet><nextToken></nextToken>"
            "</DescribeSpotPriceHistoryResponse>" % (uuid.uuid4(), items)).encode()


def split_snapshot_tags(params):
    """CreateImage's parameters without the snapshot TagSpecification (renumbered), and the
    snapshot tags as [(key, value)]."""
    specs, rest = {}, {}
    for k, v in params.items():
        m = re.match(r"TagSpecification\.(\d+)\.(.*)$", k)
        if m:
            specs.setdefault(int(m.group(1)), {})[m.group(2)] = v
        else:
            rest[k] = v
    snap_tags, n = [], 0
    for i in sorted(specs):
        spec = specs[i]
        if spec.get("ResourceType") == "snapshot":
            j = 1
            while "Tag.%d.Key" % j in spec:
                snap_tags.append((spec["Tag.%d.Key" % j], spec.get("Tag.%d.Value" % j, "")))
                j += 1
            continue
        n += 1
        for k, v in spec.items():
            rest["TagSpecification.%d.%s" % (n, k)] = v
    return rest, snap_tags


def unknown_profile(name, params):
    """EC2's refusal of an instance profile it does not know (or not yet), in its words."""
    param = "name" if params.get("IamInstanceProfile.Name") else "arn"
    return faults.Fault(400, "InvalidParameterValue",
                        "Value (%s) for parameter iamInstanceProfile.%s is invalid. Invalid IAM "
                        "Instance Profile %s" % (name, param, param))


def profile_name(params):
    """The instance profile a RunInstances or AssociateIamInstanceProfile names ("" none)."""
    name = params.get("IamInstanceProfile.Name", "")
    arn = params.get("IamInstanceProfile.Arn", "")
    return name or arn.rpartition("/")[2]


def seconds(v):
    """N, or LO,HI (uniform)."""
    return [float(x) for x in v.split(",")] if "," in v else float(v)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--upstream-port", type=int, required=True)
    p.add_argument("--port-file", required=True)
    p.add_argument("--state", required=True)
    p.add_argument("--ssh-port", type=int, required=True)
    p.add_argument("--sshd-template", required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--home", required=True)
    p.add_argument("--vpc-cidr", default="", help="the local VPC (its rules: firewall.py)")
    p.add_argument("--subnet-az", default="", help="subnet=az,… (for capacity faults by AZ)")
    p.add_argument("--defaults", default="{}", help="faults for every caller (realistic mode)")
    p.add_argument("--boot-s", default="0", help="seconds from running to sshd: N or LO,HI")
    p.add_argument("--silent-s", default="0", help="of which accepted but silent: N or LO,HI")
    a = p.parse_args()
    a.boot_s, a.silent_s = seconds(a.boot_s), seconds(a.silent_s)
    subnet_az = dict(pair.split("=") for pair in filter(None, a.subnet_az.split(",")))

    class Server(http.server.ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 256

    srv = Server(("127.0.0.1", 0), Handler)
    srv.upstream_port = a.upstream_port
    srv.cloud = Cloud(json.loads(a.defaults), subnet_az)
    srv.firewall = Firewall(a.ssh_port, a.vpc_cidr)
    srv.machines = Machines(a, srv.firewall)
    srv.rules = RuleSync(srv.firewall, srv.machines)
    srv.machines.on_power = lambda iid, kind: power(srv, iid, kind)
    srv.ssm = ssm.RunCommand(srv.machines, srv.cloud, lambda *a: own_call(srv).upstream(*a))
    srv.boot_s = a.boot_s

    def bye(*_):
        srv.machines.shutdown()
        srv.firewall.close()
        os._exit(0)

    signal.signal(signal.SIGTERM, bye)
    signal.signal(signal.SIGINT, bye)
    with open(a.port_file + ".tmp", "w") as f:
        f.write(str(srv.server_address[1]))
    os.rename(a.port_file + ".tmp", a.port_file)
    srv.serve_forever()
