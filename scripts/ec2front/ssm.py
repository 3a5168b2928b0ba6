"""Systems Manager's Run Command as AWS answers it, which moto 5.2.5 does not (it runs nothing,
says `Success` with empty output, targets every instance of the region for an id-only send, and
lacks ListCommandInvocations and DescribeInstanceInformation): each machine's emulated agent
runs `AWS-RunShellScript` in the machine (machines.py: its namespaces, cgroup and user), as the
agent would.

What AWS does and this keeps:
* an instance is a managed node only once its agent registered: the machine is up, it has an
  instance profile whose role has `AmazonSSMManagedInstanceCore`, and `ssm_register_s` passed
  (seconds to minutes on AWS; `--realistic`: 15-45 s);
* `SendCommand` to at most 50 ids (an id that is not a managed node is refused) or to a tag
  `Targets` (the managed nodes with it); `MaxConcurrency` and `MaxErrors` on AWS's side;
* a fresh invocation does not exist for a moment (`InvocationDoesNotExist`, and absent from
  ListCommandInvocations);
* statuses Pending, InProgress, Success, Failed, TimedOut (the document's `executionTimeout`,
  default 3600 s; `TimeoutSeconds` is the delivery deadline only), Cancelled;
* inline output cut at 24,000 characters of stdout and 8,000 of stderr; the plugin's combined
  `Output` in ListCommandInvocations' details at 2,500; the full output in S3 under
  `OutputS3BucketName`/`OutputS3KeyPrefix`;
* a machine that dies mid-command leaves its invocation InProgress until the execution
  timeout, as an agent that never reports again does.

What does not belong here: the machines (machines.py), faults and throttling (faults.py),
HTTP (front.py)."""
from dataclasses import dataclass, field
import os
import signal
import subprocess
import threading
import time
import urllib.parse
import uuid

from .common import LOCK, log, parse, spread

ACTIONS = ("SendCommand", "ListCommandInvocations", "GetCommandInvocation", "CancelCommand",
           "DescribeInstanceInformation")
INLINE_OUT, INLINE_ERR, DETAIL_OUT = 24000, 8000, 2500
POLICY = "AmazonSSMManagedInstanceCore"
DONE = ("Success", "Failed", "TimedOut", "Cancelled")


@dataclass
class Invocation:
    command_id: str
    instance_id: str
    requested: float
    visible_after: float
    status: str = "Pending"
    details: str = "Pending"
    code: int = -1
    out: bytes = b""
    err: bytes = b""
    started: float = 0.0
    ended: float = 0.0
    proc: object = None
    # The machine died under it: it stays InProgress until its execution timeout.
    lost_until: float = 0.0


@dataclass
class Command:
    id: str
    key: str
    region: str
    script: str
    exec_timeout: float
    delivery_timeout: float
    concurrency: int
    max_errors: int
    bucket: str
    prefix: str
    invocations: dict = field(default_factory=dict)  # instance id -> Invocation
    order: list = field(default_factory=list)


def fail(kind, message, status=400):
    return status, {"__type": kind, "message": message, "Message": message}


def limit(v, total, default):
    """MaxConcurrency / MaxErrors: N or N%% of `total` (at least 1 for a percentage)."""
    v = str(v or default)
    if v.endswith("%"):
        return max(1, int(total * float(v[:-1]) / 100.0))
    return int(v)


class RunCommand:
    def __init__(self, machines, cloud, upstream):
        self.machines, self.cloud, self.upstream = machines, cloud, upstream
        self.commands = {}  # command id -> Command
        self.profiles = {}  # profile name -> (checked at, has the policy)

    # --- managed nodes ----------------------------------------------------------------------
    def has_policy(self, name, region):
        """Whether instance profile `name`'s role has AmazonSSMManagedInstanceCore (moto's
        IAM; asked at most every 5 s per profile)."""
        now = time.monotonic()
        with LOCK:
            hit = self.profiles.get(name)
        if hit and now - hit[0] < 5:
            return hit[1]
        ok = False
        st, _, body = self.call_upstream("iam", region, {
            "Action": "GetInstanceProfile", "Version": "2010-05-08",
            "InstanceProfileName": name})
        if st == 200:
            root, q = parse(body)
            for role in [e.text for e in root.iter(q + "RoleName")]:
                st, _, pol = self.call_upstream("iam", region, {
                    "Action": "ListAttachedRolePolicies", "Version": "2010-05-08",
                    "RoleName": role})
                ok = ok or (st == 200 and POLICY.encode() in pol)
        with LOCK:
            self.profiles[name] = (now, ok)
        return ok

    def call_upstream(self, service, region, params):
        hdrs = {"Content-Type": "application/x-www-form-urlencoded",
                "Authorization": auth(region, service)}
        return self.upstream("POST", urllib.parse.urlencode(params).encode(), hdrs, "/")

    def online(self, iid, region, now):
        """Whether instance `iid`'s agent is registered and online now."""
        with LOCK:
            rec = self.cloud.instances.get(iid)
            up = iid in self.machines.procs
        if rec is None or not rec.profile or not up or now < rec.ssm_after:
            return False
        return self.has_policy(rec.profile, region)

    def describe_information(self, req, region, now):
        wanted = None
        for f in req.get("Filters", []) + req.get("InstanceInformationFilterList", []):
            if f.get("Key") in ("InstanceIds", "InstanceId"):
                wanted = set(f.get("Values", f.get("valueSet", [])))
        with LOCK:
            ids = sorted(i for i, r in self.cloud.instances.items() if r.profile)
        nodes = []
        for iid in ids:
            if wanted is not None and iid not in wanted:
                continue
            with LOCK:
                rec = self.cloud.instances[iid]
                ip = self.machines.ip.get(iid, "")
                registered = now >= rec.ssm_after and rec.ssm_seen
            if self.online(iid, region, now):
                with LOCK:
                    rec.ssm_seen = True
                nodes.append(node(iid, ip, "Online"))
            elif registered and not rec.shutdown_until:
                nodes.append(node(iid, ip, "ConnectionLost"))
        start = int(req.get("NextToken") or 0)
        size = int(req.get("MaxResults") or 50)
        doc = {"InstanceInformationList": nodes[start:start + size]}
        if start + size < len(nodes):
            doc["NextToken"] = str(start + size)
        return 200, doc

    # --- commands ---------------------------------------------------------------------------
    def targets(self, req, region, now):
        """The instance ids a SendCommand reaches, or an error answer."""
        ids = req.get("InstanceIds") or []
        if len(ids) > 50:
            return None, fail("ValidationException", "InstanceIds: at most 50 values")
        for t in req.get("Targets") or []:
            k, vals = t.get("Key", ""), t.get("Values", [])
            if k == "InstanceIds":
                ids += vals
            elif k.startswith("tag:"):
                q = {"Action": "DescribeInstances", "Version": "2016-11-15",
                     "Filter.1.Name": k, "Filter.2.Name": "instance-state-name",
                     "Filter.2.Value.1": "running"}
                for n, v in enumerate(vals, 1):
                    q["Filter.1.Value.%d" % n] = v
                st, _, body = self.call_upstream("ec2", region, q)
                if st != 200:
                    return None, fail("InternalServerError", "targets not resolved", 500)
                root, Q = parse(body)
                found = [e.text for e in root.iter(Q + "instanceId")]
                ids += [i for i in found if self.online(i, region, now)]
            else:
                return None, fail("ValidationException", "unsupported target key %s" % k)
        if not ids and not req.get("Targets"):
            return None, fail("ValidationException", "InstanceIds or Targets is required")
        if not req.get("Targets"):
            bad = [i for i in ids if not self.online(i, region, now)]
            if bad:
                return None, fail("InvalidInstanceId",
                                  "Instances [[%s]] not in a valid state for account"
                                  % ", ".join(bad))
        return list(dict.fromkeys(ids)), None

    def send(self, req, key, region, caller, now):
        if req.get("DocumentName") != "AWS-RunShellScript":
            return fail("InvalidDocument", "document %s not found here (the local cloud "
                        "runs AWS-RunShellScript only)" % req.get("DocumentName"))
        params = req.get("Parameters") or {}
        lines = params.get("commands") or []
        if not lines:
            return fail("InvalidParameters", "commands is required")
        ids, err = self.targets(req, region, now)
        if err:
            return err
        cid = str(uuid.uuid4())
        exec_t = float((params.get("executionTimeout") or ["3600"])[0])
        cmd = Command(cid, key, region, "\n".join(lines) + "\n", exec_t,
                      float(req.get("TimeoutSeconds") or 3600),
                      limit(req.get("MaxConcurrency"), len(ids), "50"),
                      limit(req.get("MaxErrors"), len(ids), "0"),
                      req.get("OutputS3BucketName") or "", req.get("OutputS3KeyPrefix") or "")
        wall = time.time()
        for iid in ids:
            cmd.invocations[iid] = Invocation(
                cid, iid, wall, now + spread(caller.faults.get("ssm_invisible_s", [0.3, 1.2]),
                                             caller.rng))
            cmd.order.append(iid)
        with LOCK:
            self.commands[cid] = cmd
        threading.Thread(target=self.dispatch, args=(cmd,), daemon=True).start()
        return 200, {"Command": {
            "CommandId": cid, "DocumentName": "AWS-RunShellScript", "Status": "Pending",
            "InstanceIds": req.get("InstanceIds") or [], "Targets": req.get("Targets") or [],
            "RequestedDateTime": wall, "TargetCount": len(ids), "CompletedCount": 0,
            "ErrorCount": 0, "MaxConcurrency": str(req.get("MaxConcurrency") or "50"),
            "MaxErrors": str(req.get("MaxErrors") or "0"),
            "OutputS3BucketName": cmd.bucket, "OutputS3KeyPrefix": cmd.prefix}}

    def dispatch(self, cmd):
        """AWS's side of the fan-out: at most `concurrency` invocations running, no new one
        once more than `max_errors` failed."""
        pending = list(cmd.order)
        running = []
        while pending or running:
            with LOCK:
                running = [i for i in running if cmd.invocations[i].status not in DONE]
                errors = sum(1 for v in cmd.invocations.values()
                             if v.status in ("Failed", "TimedOut"))
                pending = [i for i in pending if cmd.invocations[i].status == "Pending"]
            if errors > cmd.max_errors:
                for iid in pending:
                    self.finish(cmd, cmd.invocations[iid], "Cancelled", "Cancelled", -1)
                pending = []
            while pending and len(running) < cmd.concurrency:
                iid = pending.pop(0)
                running.append(iid)
                threading.Thread(target=self.run_one, args=(cmd, cmd.invocations[iid]),
                                 daemon=True).start()
            time.sleep(0.05)

    def run_one(self, cmd, inv):
        now = time.monotonic()
        deadline = now + cmd.delivery_timeout
        while not self.online(inv.instance_id, cmd.region, time.monotonic()):
            if inv.status != "Pending":
                return
            if time.monotonic() > deadline:
                return self.finish(cmd, inv, "TimedOut", "DeliveryTimedOut", -1)
            time.sleep(0.5)
        with LOCK:
            if inv.status != "Pending":
                return
            inv.status = inv.details = "InProgress"
            inv.started = time.time()
        d = os.path.join(self.machines.root, inv.instance_id, "ssm", cmd.id)
        os.makedirs(d, exist_ok=True)
        script = os.path.join(d, "_script.sh")
        with open(script, "w") as f:
            f.write(cmd.script)
        os.chmod(os.path.dirname(d), 0o755)
        os.chmod(d, 0o755)
        os.chmod(script, 0o755)
        env = {"AWS_SSM_INSTANCE_ID": inv.instance_id, "AWS_SSM_REGION_NAME": cmd.region}
        out_p, err_p = os.path.join(d, "stdout"), os.path.join(d, "stderr")
        with open(out_p, "wb") as out, open(err_p, "wb") as err:
            p = self.machines.agent_run(inv.instance_id, script, env, out, err)
        if p is None:
            return self.finish(cmd, inv, "Failed", "Undeliverable", -1)
        with LOCK:
            inv.proc = p
        timed_out = False
        try:
            p.wait(timeout=cmd.exec_timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            kill(p)
        inv.out, inv.err = read(out_p), read(err_p)
        if inv.status == "Cancelled":
            return
        if timed_out:
            return self.finish(cmd, inv, "TimedOut", "ExecutionTimedOut", -1)
        with LOCK:
            alive = inv.instance_id in self.machines.procs
        if not alive:  # the machine died under it: its agent never reports again
            rest = cmd.exec_timeout - (time.time() - inv.started)
            time.sleep(max(0, rest))
            return self.finish(cmd, inv, "TimedOut", "ExecutionTimedOut", -1)
        code = p.returncode if p.returncode >= 0 else 128 - p.returncode
        self.finish(cmd, inv, "Success" if code == 0 else "Failed",
                    "Success" if code == 0 else "Failed", code)

    def finish(self, cmd, inv, status, details, code):
        with LOCK:
            if inv.status in DONE:
                return
            inv.status, inv.details, inv.code, inv.ended = status, details, code, time.time()
        if cmd.bucket and inv.started:
            for name, data in (("stdout", inv.out), ("stderr", inv.err)):
                key = "/".join(filter(None, [cmd.prefix, cmd.id, inv.instance_id,
                                             "awsrunShellScript", "0.awsrunShellScript", name]))
                st, _, body = self.upstream(
                    "PUT", data, {"Content-Type": "application/octet-stream",
                                  "Authorization": auth(cmd.region, "s3")},
                    "/%s/%s" % (cmd.bucket, urllib.parse.quote(key)))
                if st != 200:
                    log("ssm %s: output not written to s3://%s/%s: %s"
                        % (inv.instance_id, cmd.bucket, key, body[:120]))

    def cancel(self, req):
        with LOCK:
            cmd = self.commands.get(req.get("CommandId"))
        if cmd is None:
            return fail("InvalidCommandId", "no such command")
        only = set(req.get("InstanceIds") or cmd.order)
        for iid in cmd.order:
            inv = cmd.invocations[iid]
            if iid not in only:
                continue
            with LOCK:
                p = inv.proc if inv.status == "InProgress" else None
                live = inv.status not in DONE
            if live:
                self.finish(cmd, inv, "Cancelled", "Cancelled", -1)
            if p is not None:
                kill(p)
        return 200, {}

    # --- status and output ------------------------------------------------------------------
    def invocation_doc(self, cmd, inv, details):
        url = ("https://s3.amazonaws.com/%s/%s" % (cmd.bucket, "/".join(filter(None, [
            cmd.prefix, cmd.id, inv.instance_id, "awsrunShellScript", "0.awsrunShellScript"]))))
        doc = {"CommandId": cmd.id, "InstanceId": inv.instance_id, "Status": inv.status,
               "StatusDetails": inv.details, "RequestedDateTime": inv.requested,
               "DocumentName": "AWS-RunShellScript"}
        if details:
            out = text(inv.out)
            if inv.err:
                out += "\n----------ERROR-------\n" + text(inv.err)
            doc["CommandPlugins"] = [{
                "Name": "aws:runShellScript", "Status": inv.status,
                "StatusDetails": inv.details, "ResponseCode": inv.code,
                "Output": out[:DETAIL_OUT],
                "StandardOutputUrl": url + "/stdout" if cmd.bucket else "",
                "StandardErrorUrl": url + "/stderr" if cmd.bucket else "",
                "OutputS3BucketName": cmd.bucket, "OutputS3KeyPrefix": cmd.prefix}]
        return doc

    def list_invocations(self, req, now):
        with LOCK:
            cmd = self.commands.get(req.get("CommandId"))
        if cmd is None:
            return 200, {"CommandInvocations": []}
        size = min(50, int(req.get("MaxResults") or 50))
        start = int(req.get("NextToken") or 0)
        with LOCK:
            seen = [cmd.invocations[i] for i in cmd.order
                    if cmd.invocations[i].visible_after <= now
                    and req.get("InstanceId") in (None, i)]
            page = [self.invocation_doc(cmd, v, bool(req.get("Details"))) for v in
                    seen[start:start + size]]
        doc = {"CommandInvocations": page}
        if start + size < len(seen):
            doc["NextToken"] = str(start + size)
        return 200, doc

    def get_invocation(self, req, now):
        with LOCK:
            cmd = self.commands.get(req.get("CommandId"))
            inv = cmd and cmd.invocations.get(req.get("InstanceId"))
            if inv is None or inv.visible_after > now:
                return fail("InvocationDoesNotExist", "")
            doc = self.invocation_doc(cmd, inv, False)
            doc.update({
                "ResponseCode": inv.code, "PluginName": "aws:runShellScript",
                "ExecutionStartDateTime": stamp(inv.started),
                "ExecutionEndDateTime": stamp(inv.ended),
                "StandardOutputContent": text(inv.out)[:INLINE_OUT],
                "StandardErrorContent": text(inv.err)[:INLINE_ERR]})
        return 200, doc

    def call(self, action, req, key, region, caller):
        now = time.monotonic()
        if action == "SendCommand":
            return self.send(req, key, region, caller, now)
        if action == "ListCommandInvocations":
            return self.list_invocations(req, now)
        if action == "GetCommandInvocation":
            return self.get_invocation(req, now)
        if action == "CancelCommand":
            return self.cancel(req)
        return self.describe_information(req, region, now)


def auth(region, service):
    """An Authorization header naming the region and service (the front's own calls: moto
    routes by them and does not check signatures here)."""
    return ("AWS4-HMAC-SHA256 Credential=AKIDFRONT/20260101/%s/%s/aws4_request, "
            "SignedHeaders=host, Signature=0" % (region, service))


def node(iid, ip, ping):
    return {"InstanceId": iid, "PingStatus": ping, "LastPingDateTime": time.time(),
            "AgentVersion": "3.3.1142.0", "IsLatestVersion": True, "PlatformType": "Linux",
            "PlatformName": "Ubuntu", "PlatformVersion": "24.04", "ResourceType": "EC2Instance",
            "IPAddress": ip, "ComputerName": "ip-" + ip.replace(".", "-")}


def text(b):
    return b.decode("utf-8", "replace")


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


def stamp(t):
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(t)) if t else ""


def kill(p):
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(p.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        try:
            p.wait(timeout=2)
            return
        except subprocess.TimeoutExpired:
            continue
