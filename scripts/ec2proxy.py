#!/usr/bin/env python3
"""The local cloud's EC2 front: what moto_server does not do that AWS does.

It sits between the tools (AWS_ENDPOINT_URL) and moto_server and adds, per caller (the access key
id of the request, so parallel tests do not see each other's faults):

* faults, configured at run time (POST /__proxy/faults?key=AKID, JSON below): a fraction of calls
  (all, or some actions) answered RequestLimitExceeded (HTTP 503) or InternalError (500, before
  or after moto did the work: a lost answer); added latency; token buckets per action
  (RunInstances counted in instances, as AWS does); InsufficientInstanceCapacity for chosen
  subnets / AZs / types; a fresh instance id unknown (InvalidInstanceID.NotFound, absent from
  DescribeInstances) for N seconds; new instances shown `pending` for a while and terminated ones
  `shutting-down` before `terminated`.
* one call at a time into moto: moto is not thread-safe (a DescribeInstances serialized while
  CreateTags adds a tag fails with "dictionary changed size during iteration", and a
  RunInstances can answer 500 *after* launching, so its SDK retry launched twice); AWS has no
  such failure, so the front never lets moto see two calls at once.
* RunInstances idempotency by ClientToken (moto ignores it; AWS returns the first answer again,
  and answers the same token with other parameters IdempotentParameterMismatch), and
  MinCount < MaxCount launching MaxCount when there is capacity (moto launches MinCount).
* permissions denied, as a least-privilege IAM policy does: "deny": [actions] answers those
  UnauthorizedOperation (HTTP 403), so every error path can be tried with any one denied.
* counters per action, per caller (GET /__proxy/counters?key=AKID).
* machines: every instance with a loopback private IP becomes its own sshd listening on
  that IP — its own home directory, hostname and boot id (a mount and UTS namespace, as root),
  its own host key, and in ~/.ssh/authorized_keys the public half of the key pair it was
  launched with (as cloud-init does; no key pair, no login) — started when the instance "boots" (after a delay: the port refuses
  connections, then accepts without a banner, then logs in), stopped with the instance,
  restarted (new boot id) on reboot, and its disk deleted on termination.

Faults JSON (every key optional):
  {"throttle": 0.3, "throttle_actions": ["RunInstances"], "error500": 0.1,
   "error500_after": 0.1, "lost_answers": 1, "lost_actions": ["RunInstances"],
   "latency_ms": 20 or {"RunInstances": 3000}, "pending_s": [5, 17], "shutting_down_s": [2, 5],
   "not_found_s": 3,
   "capacity": [{"subnet": "subnet-1"}, {"type": "c5.large", "available": 2}, {"az": "..."}],
   "buckets": {"RunInstances": [1000, 2], "DescribeInstances": [100, 20]},
   "deny": ["DescribePlacementGroups"], "seed": 1}
A capacity pool matches on every key given (subnet, type, az); without "available" it has
none; with it, that many instances in all (RunInstances gets min(MaxCount, left) if that is at
least MinCount). error500_after (a lost answer: moto did the work) hits only lost_actions, as
do the first lost_answers answers of them.

Only loopback: it listens on 127.0.0.1 and talks to moto on 127.0.0.1.
"""
import argparse
import base64
import http.client
import http.server
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
import xml.etree.ElementTree as ET

LOCK = threading.Lock()


def parse(xml):
    """An answer's tree and its namespace prefix (moto's answers differ in the trailing /)."""
    root = ET.fromstring(xml)
    return root, root.tag.split("}")[0] + "}" if root.tag.startswith("{") else ""


def serialize(root, q):
    with LOCK:
        ET.register_namespace("", q[1:-1])
        return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def log(msg):
    print("ec2proxy: " + msg, file=sys.stderr, flush=True)


class Bucket:
    """An AWS-style token bucket: `size` tokens, refilled at `rate` per second."""

    def __init__(self, size, rate):
        self.size, self.rate = float(size), float(rate)
        self.tokens, self.at = float(size), time.monotonic()

    def take(self, n):
        now = time.monotonic()
        self.tokens = min(self.size, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= n:
            self.tokens -= n
            return True
        return False


class Caller:
    """Faults, counters and timings of one access key."""

    def __init__(self, faults):
        self.faults = faults
        self.rng = random.Random(faults.get("seed"))
        self.buckets = {a: Bucket(*v) for a, v in faults.get("buckets", {}).items()}
        self.counters = {"calls": {}, "faults": {}, "instances_launched": 0}
        self.lost = 0

    def count(self, kind, action):
        d = self.counters[kind]
        d[action] = d.get(action, 0) + 1


CALLERS = {}
DEFAULT = {}  # faults for callers never configured (realistic mode sets these)
INSTANCES = {}  # id -> {"born", "pending_until", "gone_at", "shutdown_until", "key"}
TOKENS = {}  # (key, client token) -> (status, body, the request's parameters)
INFLIGHT = {}  # (key, client token) -> (Event set when its first request is answered, params)
UPSTREAM = threading.Lock()  # moto serves one call at a time (see the module's doc)


def caller(key):
    with LOCK:
        if key not in CALLERS:
            CALLERS[key] = Caller(dict(DEFAULT))
        return CALLERS[key]


def spread(v, rng):
    if isinstance(v, (list, tuple)):
        return rng.uniform(v[0], v[1])
    return float(v or 0)


def error_xml(code, message):
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>%s</Code>'
        "<Message>%s</Message></Error></Errors><RequestID>%s</RequestID></Response>"
        % (code, message, uuid.uuid4())
    )
    return body.encode()


def ids_in(params, prefix):
    return [v for k, v in params.items() if k.startswith(prefix) and v.startswith("i-")]


# --- machines ----------------------------------------------------------------------------------


class Machines:
    """One sshd per instance address; see the module doc."""

    def __init__(self, args):
        self.a = args
        self.root = os.path.join(args.state, "machines")
        os.makedirs(self.root, exist_ok=True)
        self.procs = {}  # id -> Popen
        self.gen = {}  # id -> generation (a stop/terminate cancels a pending boot)
        self.ip = {}
        self.keys = {}  # id -> the launch key pair's public key (OpenSSH line) or ""
        self.images = {}  # id -> the baked image's home directory it starts from
        self.image_root = os.path.join(args.state, "images")
        self.boot_s = args.boot_s

    def _dir(self, iid):
        return os.path.join(self.root, iid)

    def boot(self, iid, ip, delay, authorized=None, image=None):
        if not ip or not ip.startswith("127."):
            return
        with LOCK:
            self.ip[iid] = ip
            if authorized is not None:
                self.keys[iid] = authorized
            if image and os.path.isdir(os.path.join(self.image_root, image, "home")):
                self.images[iid] = os.path.join(self.image_root, image, "home")
            g = self.gen[iid] = self.gen.get(iid, 0) + 1
        threading.Thread(target=self._boot, args=(iid, ip, delay, g), daemon=True).start()

    def _current(self, iid, g):
        with LOCK:
            return self.gen.get(iid) == g

    def _boot(self, iid, ip, delay, g):
        d = self._dir(iid)
        try:
            self._prepare(iid, d)
        except Exception as e:  # noqa: BLE001 - a machine that cannot be made is logged
            log("%s: cannot prepare machine: %s" % (iid, e))
            return
        rng = random.Random()
        # "Booting": refused; then the last seconds accepted but silent (sshd not up yet).
        silent = min(delay, spread(self.a.silent_s, rng)) if delay > 0 else 0
        end = time.monotonic() + delay
        while time.monotonic() < end - silent:
            if not self._current(iid, g):
                return
            time.sleep(0.05)
        if silent > 0:
            self._silent_listener(ip, end, iid, g)
        if not self._current(iid, g):
            return
        with open(os.path.join(d, "boot_id"), "w") as f:
            f.write(str(uuid.uuid4()) + "\n")
        self._start_sshd(iid, ip, d, g)

    def _prepare(self, iid, d):
        if os.path.isdir(d):
            return
        home = os.path.join(d, "home")
        os.makedirs(home)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", iid,
                        "-f", os.path.join(d, "host_key")], check=True)
        for f in (".profile", ".bashrc"):
            src = os.path.join("/etc/skel", f)
            if os.path.exists(src):
                shutil.copy(src, home)
        with LOCK:
            image = self.images.get(iid)
        if image:  # launched from a baked image: its disk as it was baked
            shutil.copytree(image, home, dirs_exist_ok=True, symlinks=True)
        os.makedirs(os.path.join(home, ".ssh"), mode=0o700, exist_ok=True)
        with open(os.path.join(home, ".ssh", "authorized_keys"), "w") as f:
            key = self.keys.get(iid, "")
            f.write(key + "\n" if key else "")
        os.chmod(os.path.join(home, ".ssh", "authorized_keys"), 0o600)
        if os.getuid() == 0:
            subprocess.run(["chown", "-R", self.a.user + ":", home], check=True)
        os.chmod(d, 0o755)

    def _silent_listener(self, ip, end, iid, g):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((ip, self.a.ssh_port))
        except OSError:
            time.sleep(max(0, end - time.monotonic()))
            return
        s.listen(64)
        s.settimeout(0.1)
        held = []
        while time.monotonic() < end and self._current(iid, g):
            try:
                c, _ = s.accept()
                held.append(c)
            except socket.timeout:
                pass
        s.close()
        for c in held:
            c.close()

    def _start_sshd(self, iid, ip, d, g):
        cfg = os.path.join(d, "sshd_config")
        with open(self.a.sshd_template) as t, open(cfg, "w") as f:
            for line in t:
                word = line.split(" ")[0]
                if word in ("Port", "ListenAddress", "HostKey", "PidFile"):
                    continue
                if word == "AuthorizedKeysFile" and os.getuid() == 0:
                    continue  # the instance's own ~/.ssh/authorized_keys (below)
                f.write(line)
            if os.getuid() == 0:
                f.write("AuthorizedKeysFile .ssh/authorized_keys\n")
            f.write("ListenAddress %s:%d\nHostKey %s/host_key\nPidFile %s/sshd.pid\n"
                    % (ip, self.a.ssh_port, d, d))
        sshd = ["/usr/sbin/sshd", "-D", "-e", "-f", cfg]
        if os.getuid() == 0:
            hostname = "ip-" + ip.replace(".", "-")
            script = ('mount --make-rprivate / && mount --bind "$1/home" "$2" && '
                      'mount --bind "$1/boot_id" /proc/sys/kernel/random/boot_id && '
                      'hostname "$3" && shift 3 && exec "$@"')
            argv = ["unshare", "--mount", "--uts", "--propagation", "private", "sh", "-c", script,
                    "sh", d, self.a.home, hostname] + sshd
        else:
            argv = sshd
        log_f = open(os.path.join(d, "sshd.log"), "ab")
        for _ in range(50):  # the address may still be held by the silent listener's close
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log_f, stderr=log_f,
                                 start_new_session=True)
            time.sleep(0.05)
            if p.poll() is None:
                break
            time.sleep(0.1)
        with LOCK:
            if self.gen.get(iid) != g:
                os.killpg(p.pid, signal.SIGTERM)
                return
            self.procs[iid] = p

    def halt(self, iid, wipe=False):
        with LOCK:
            self.gen[iid] = self.gen.get(iid, 0) + 1
            p = self.procs.pop(iid, None)
        if p is not None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            p.wait()
        if wipe:
            shutil.rmtree(self._dir(iid), ignore_errors=True)

    def bake(self, iid, ami):
        """CreateImage: the instance's disk (its home; not its authorized keys, which the
        next launch's key pair replaces, as cloud-init does) kept for instances of `ami`."""
        src = os.path.join(self._dir(iid), "home")
        dst = os.path.join(self.image_root, ami, "home")
        if os.path.isdir(src):
            shutil.copytree(src, dst, symlinks=True, ignore=shutil.ignore_patterns("authorized_keys"))

    def shutdown(self):
        for iid in list(self.procs):
            self.halt(iid)


# --- the proxy ---------------------------------------------------------------------------------


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

    def reply(self, status, body, ctype="text/xml;charset=UTF-8", headers=()):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def control(self, body):
        url = urllib.parse.urlparse(self.path)
        key = urllib.parse.parse_qs(url.query).get("key", [""])[0]
        if url.path == "/__proxy/faults":
            faults = json.loads(body or b"{}")
            with LOCK:
                CALLERS[key] = Caller(faults)
            return self.reply(200, b"{}", "application/json")
        if url.path == "/__proxy/counters":
            c = caller(key)
            with LOCK:
                body = json.dumps(c.counters).encode()
            return self.reply(200, body, "application/json")
        self.reply(404, b"{}", "application/json")

    def handle_any(self, method):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        if self.path.startswith("/__proxy/"):
            return self.control(body)
        params = {}
        ctype = self.headers.get("Content-Type", "")
        if method == "POST" and "x-www-form-urlencoded" in ctype:
            params = dict(urllib.parse.parse_qsl(body.decode(), keep_blank_values=True))
        action = params.get("Action")
        m = re.search(r"Credential=([^/]+)/", self.headers.get("Authorization", ""))
        key = m.group(1) if m else ""
        if action is None:
            return self.forward(method, body)
        c = caller(key)
        f = c.faults
        # The request as sent, before anything below adjusts it: what a ClientToken stands for.
        sent = {k: v for k, v in params.items() if k not in ("ClientToken",)}
        with LOCK:
            c.count("calls", action)
        lat = f.get("latency_ms")
        if isinstance(lat, dict):
            lat = lat.get(action, 0)
        if lat:
            time.sleep(lat / 1000.0)
        fault = self.choose_fault(c, action, params)
        if fault:
            status, code, msg = fault
            with LOCK:
                c.count("faults", code)
            return self.reply(status, error_xml(code, msg))
        owner = None
        if action == "RunInstances" and params.get("ClientToken"):
            tk = (key, params["ClientToken"])
            # AWS is idempotent on the token even for a retry that arrives while the first
            # request is still being served (an SDK attempt timeout under load): it waits for
            # the first one and replays its answer, never launching twice. The same token with
            # other parameters is refused, as AWS does.
            while True:
                with LOCK:
                    cached = TOKENS.get(tk)
                    inflight = None if cached else INFLIGHT.get(tk)
                    if not cached and inflight is None:
                        owner = threading.Event()
                        INFLIGHT[tk] = (owner, sent)
                if cached or owner:
                    break
                if inflight[1] != sent:
                    break
                inflight[0].wait(300)
            first = cached[2] if cached else (inflight[1] if inflight else sent)
            if first != sent:
                with LOCK:
                    c.count("faults", "IdempotentParameterMismatch")
                return self.reply(400, error_xml(
                    "IdempotentParameterMismatch",
                    "The client token you have provided is associated with a resource that is "
                    "already deleted or has different parameters. Use a new client token."))
            if cached:
                with LOCK:
                    c.count("faults", "IdempotentReplay")
                return self.reply(cached[0], cached[1])
        if action == "RunInstances":
            params["_sent"] = sent
        try:
            return self.serve_action(method, body, params, action, key, c, f)
        finally:
            if owner is not None:
                with LOCK:
                    INFLIGHT.pop(tk, None)
                owner.set()

    def serve_action(self, method, body, params, action, key, c, f):
        if action in PLACEMENT_ACTIONS:
            status, answer = placement_call(action, params)
            return self.reply(status, answer)
        if action == "CreateImage":
            # moto refuses snapshot tags in CreateImage; AWS takes them: the front strips them
            # and tags the image's snapshots itself once moto made them (after()).
            params, snap_tags = split_snapshot_tags(params)
            params["_snapshot_tags"] = snap_tags
            body = urllib.parse.urlencode(
                {k: v for k, v in params.items() if not k.startswith("_")}).encode()
        pool = None
        if action == "RunInstances":
            # moto has no placement groups: the front keeps them (see placement_call).
            group = params.pop("Placement.GroupName", None)
            if group is not None:
                with LOCK:
                    known = group in PLACEMENT_GROUPS
                if not known:
                    return self.reply(400, error_xml(
                        "InvalidPlacementGroup.Unknown",
                        "The Placement Group '%s' is unknown." % group))
                params["_placement"] = group
            # moto launches MinCount instances; AWS launches as many as it can up to MaxCount.
            pool = params.pop("_pool", None)
            params["MinCount"] = params.get("MaxCount", params.get("MinCount", "1"))
            body = urllib.parse.urlencode(
                {k: v for k, v in params.items() if not k.startswith("_")}).encode()
        status, headers, answer = self.upstream(method, body)
        if status == 200:
            answer = self.after(c, key, action, params, answer)
            if pool is not None:
                with LOCK:
                    pool["available"] -= answer.count(b"<instanceId>")
        lost = f.get("error500_after", 0)
        lose = False
        if status == 200 and action in f.get("lost_actions", ["RunInstances"]):
            with LOCK:
                if c.lost < f.get("lost_answers", 0):
                    c.lost += 1
                    lose = True
            lose = lose or (lost and c.rng.random() < lost)
        if lose:
            with LOCK:
                c.count("faults", "InternalErrorAfterWork")
            return self.reply(500, error_xml("InternalError", "An internal error has occurred"))
        self.reply(status, answer, headers.get("Content-Type", "text/xml"))

    def matches(self, f, action):
        acts = f.get("throttle_actions")
        return not acts or action in acts

    def choose_fault(self, c, action, params):
        f = c.faults
        if action in f.get("deny", ()):
            return (403, "UnauthorizedOperation",
                    "You are not authorized to perform this operation.")
        with LOCK:
            b = c.buckets.get(action)
            cost = int(params.get("MaxCount", 1)) if action == "RunInstances" else 1
            if b and not b.take(cost):
                return (503, "RequestLimitExceeded", "Request limit exceeded.")
            r = c.rng.random()
        if self.matches(f, action) and r < f.get("throttle", 0):
            return (503, "RequestLimitExceeded", "Request limit exceeded.")
        if self.matches(f, action) and r < f.get("throttle", 0) + f.get("error500", 0):
            return (500, "InternalError", "An internal error has occurred")
        if action == "RunInstances":
            for pool in f.get("capacity", []):
                want = {"subnet": params.get("SubnetId"), "type": params.get("InstanceType"),
                        "az": params.get("Placement.AvailabilityZone")
                        or SUBNET_AZ.get(params.get("SubnetId"))}
                if all(want.get(k) == v for k, v in pool.items() if k != "available"):
                    left = pool.get("available", 0)
                    if left >= int(params.get("MinCount", 1)):
                        params["MaxCount"] = str(min(int(params.get("MaxCount", 1)), left))
                        params["_pool"] = pool
                        break
                    return (500, "InsufficientInstanceCapacity",
                            "We currently do not have sufficient %s capacity in the Availability "
                            "Zone you requested (%s)." % (want["type"], want["az"]))
        now = time.monotonic()
        named = ids_in(params, "InstanceId") + ids_in(params, "ResourceId")
        with LOCK:
            fresh = [i for i in named if i in INSTANCES and INSTANCES[i]["hidden_until"] > now]
        if fresh:
            return (400, "InvalidInstanceID.NotFound",
                    "The instance ID '%s' does not exist" % ", ".join(fresh))
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

    def upstream(self, method, body):
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection", "content-length")}
        with UPSTREAM:
            conn = http.client.HTTPConnection("127.0.0.1", self.server.upstream_port, timeout=300)
            conn.request(method, self.path, body=body, headers=headers)
            r = conn.getresponse()
            data = r.read()
            conn.close()
        if r.status >= 500:
            # An emulator failure, not an injected fault: worth a line in proxy.log.
            log("moto answered %d to %s %s: %s" % (r.status, method, body[:80], data[:200]))
        return (r.status, {k: v for k, v in r.getheaders()}, data)

    def forward(self, method, body):
        """Anything that is not an EC2 action (S3, mostly): moto's answer, headers and all
        (S3's ETag and x-amz-* headers are the answer)."""
        status, headers, data = self.upstream(method, body)
        hop = ("content-type", "content-length", "transfer-encoding", "connection", "server",
               "date", "keep-alive")
        self.reply(status, data, headers.get("Content-Type", "application/octet-stream"),
                   [(k, v) for k, v in headers.items() if k.lower() not in hop])

    # What AWS would have said, from what moto said.
    def after(self, c, key, action, params, answer):
        f = c.faults
        now = time.monotonic()
        machines = self.server.machines
        if action == "RunInstances":
            root, Q = parse(answer)
            keys = self.public_key(params.get("KeyName"))
            n = 0
            for inst in root.iter(Q + "item"):
                iid = inst.findtext(Q + "instanceId")
                if not iid:
                    continue
                n += 1
                pend = spread(f.get("pending_s"), c.rng)
                with LOCK:
                    INSTANCES[iid] = {"pending_until": now + pend,
                                      "hidden_until": now + spread(f.get("not_found_s"), c.rng),
                                      "shutdown_until": 0}
                ip = inst.findtext(Q + "privateIpAddress")
                machines.boot(iid, ip, pend + spread(f.get("boot_s", self.server.boot_s), c.rng),
                              authorized=keys, image=params.get("ImageId"))
            with LOCK:
                c.counters["instances_launched"] += n
                if params.get("_placement"):
                    for inst in root.iter(Q + "item"):
                        iid = inst.findtext(Q + "instanceId")
                        if iid:
                            PLACED[iid] = params["_placement"]
                if params.get("ClientToken"):
                    TOKENS[(key, params["ClientToken"])] = (200, answer, params["_sent"])
            return answer
        if action in ("TerminateInstances", "StopInstances", "StartInstances", "RebootInstances"):
            ids = ids_in(params, "InstanceId")
            for iid in ids:
                if action == "TerminateInstances":
                    with LOCK:
                        rec = INSTANCES.setdefault(iid, {"pending_until": 0, "hidden_until": 0})
                        rec["shutdown_until"] = now + spread(f.get("shutting_down_s"), c.rng)
                    machines.halt(iid, wipe=True)
                elif action == "StopInstances":
                    machines.halt(iid)
                else:
                    ip = machines.ip.get(iid)
                    if action == "RebootInstances":
                        machines.halt(iid)
                    if ip:
                        machines.boot(iid, ip, spread(f.get("boot_s", self.server.boot_s), c.rng))
            return answer
        if action == "CreateImage":
            root, Q = parse(answer)
            ami, iid = root.findtext(Q + "imageId"), params.get("InstanceId")
            if ami and params.get("_snapshot_tags"):
                self.tag_snapshots(ami, params["_snapshot_tags"])
            if ami and iid:
                machines.bake(iid, ami)
                ip = machines.ip.get(iid)
                if params.get("NoReboot", "false").lower() != "true" and ip:
                    machines.halt(iid)  # AWS reboots the instance for a consistent disk
                    machines.boot(iid, ip, spread(f.get("boot_s", self.server.boot_s), c.rng))
            return answer
        if action == "DescribeInstances":
            return self.rewrite_describe(answer, now)
        return answer

    def rewrite_describe(self, answer, now):
        with LOCK:
            hold = {i: r for i, r in INSTANCES.items()
                    if r["pending_until"] > now or r.get("shutdown_until", 0) > now
                    or r["hidden_until"] > now}
            placed = dict(PLACED)
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
                    if rec["hidden_until"] > now:
                        iset.remove(inst)
                        continue
                    st = inst.find(Q + "instanceState")
                    name = st.findtext(Q + "name")
                    if name == "running" and rec["pending_until"] > now:
                        st.find(Q + "code").text, st.find(Q + "name").text = "0", "pending"
                    if name == "terminated" and rec.get("shutdown_until", 0) > now:
                        st.find(Q + "code").text, st.find(Q + "name").text = "32", "shutting-down"
                if iset is not None and len(iset) == 0:
                    rs.remove(res)
        return serialize(root, Q)


SUBNET_AZ = {}

# Placement groups, which moto 5 does not have: name -> {strategy, id, tags}; and the group
# each instance was launched into. DeletePlacementGroup is refused while a live instance is in
# the group, as AWS does.
PLACEMENT_GROUPS = {}
PLACED = {}
PLACEMENT_ACTIONS = ("CreatePlacementGroup", "DescribePlacementGroups", "DeletePlacementGroup")
EC2_NS = "http://ec2.amazonaws.com/doc/2016-11-15/"


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


def placement_call(action, params):
    """(status, XML answer) of a placement-group call, kept by the front."""
    name = params.get("GroupName", "")
    with LOCK:
        if action == "CreatePlacementGroup":
            if name in PLACEMENT_GROUPS:
                return 400, error_xml("InvalidPlacementGroup.Duplicate",
                                      "The placement group '%s' already exists." % name)
            tags, i = {}, 1
            while "TagSpecification.1.Tag.%d.Key" % i in params:
                tags[params["TagSpecification.1.Tag.%d.Key" % i]] = \
                    params.get("TagSpecification.1.Tag.%d.Value" % i, "")
                i += 1
            PLACEMENT_GROUPS[name] = {"strategy": params.get("Strategy", "cluster"),
                                      "id": "pg-" + uuid.uuid4().hex[:17], "tags": tags}
            return 200, placement_xml(action, [name], "placementGroup")
        if action == "DeletePlacementGroup":
            if name not in PLACEMENT_GROUPS:
                return 400, error_xml("InvalidPlacementGroup.Unknown",
                                      "The Placement Group '%s' is unknown." % name)
            now = time.monotonic()
            live = [i for i, g in PLACED.items() if g == name
                    and not (i in INSTANCES and INSTANCES[i].get("shutdown_until", 0)
                             and INSTANCES[i]["shutdown_until"] <= now)]
            if live:
                return 400, error_xml("InvalidPlacementGroup.InUse",
                                      "There are instances in placement group %s" % name)
            del PLACEMENT_GROUPS[name]
            return 200, placement_xml(action, [], None)
        names = [v for k, v in params.items() if k.startswith("GroupName.")]
        unknown = [n for n in names if n not in PLACEMENT_GROUPS]
        if unknown:
            return 400, error_xml("InvalidPlacementGroup.Unknown",
                                  "The Placement Group '%s' is unknown." % unknown[0])
        chosen = names or sorted(PLACEMENT_GROUPS)
        i = 1
        while "Filter.%d.Name" % i in params:
            fname = params["Filter.%d.Name" % i]
            values = [v for k, v in params.items() if k.startswith("Filter.%d.Value." % i)]
            if fname == "group-name":
                chosen = [n for n in chosen if n in values]
            elif fname.startswith("tag:"):
                chosen = [n for n in chosen
                          if PLACEMENT_GROUPS[n]["tags"].get(fname[4:]) in values]
            elif fname == "strategy":
                chosen = [n for n in chosen if PLACEMENT_GROUPS[n]["strategy"] in values]
            i += 1
        return 200, placement_xml(action, chosen, "placementGroupSet")


def placement_xml(action, names, wrapper):
    """Placement groups as EC2 answers them (called with LOCK held)."""
    def group(n):
        g = PLACEMENT_GROUPS[n]
        tags = "".join("<item><key>%s</key><value>%s</value></item>" % (k, v)
                       for k, v in g["tags"].items())
        return ("<groupName>%s</groupName><state>available</state><strategy>%s</strategy>"
                "<groupId>%s</groupId><tagSet>%s</tagSet>" % (n, g["strategy"], g["id"], tags))
    if wrapper == "placementGroup":
        inner = "<placementGroup>%s</placementGroup>" % group(names[0])
    elif wrapper:
        inner = "<%s>%s</%s>" % (wrapper, "".join("<item>%s</item>" % group(n) for n in names),
                                 wrapper)
    else:
        inner = "<return>true</return>"
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<%sResponse xmlns="%s"><requestId>%s</requestId>'
            "%s</%sResponse>" % (action, EC2_NS, uuid.uuid4(), inner, action)).encode()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--upstream-port", type=int, required=True)
    p.add_argument("--port-file", required=True)
    p.add_argument("--state", required=True)
    p.add_argument("--ssh-port", type=int, required=True)
    p.add_argument("--sshd-template", required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--home", required=True)
    p.add_argument("--subnet-az", default="", help="subnet=az,… (for capacity faults by AZ)")
    p.add_argument("--defaults", default="{}", help="faults for every caller (realistic mode)")
    p.add_argument("--boot-s", default="0", help="seconds from running to sshd: N or LO,HI")
    p.add_argument("--silent-s", default="0", help="of which accepted but silent: N or LO,HI")
    a = p.parse_args()
    a.boot_s = [float(x) for x in a.boot_s.split(",")] if "," in a.boot_s else float(a.boot_s)
    a.silent_s = [float(x) for x in a.silent_s.split(",")] if "," in a.silent_s else float(a.silent_s)
    DEFAULT.update(json.loads(a.defaults))
    for pair in filter(None, a.subnet_az.split(",")):
        s, z = pair.split("=")
        SUBNET_AZ[s] = z

    class Server(http.server.ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 256

    srv = Server(("127.0.0.1", 0), Handler)
    srv.upstream_port = a.upstream_port
    srv.machines = Machines(a)
    srv.boot_s = a.boot_s

    def bye(*_):
        srv.machines.shutdown()
        os._exit(0)

    signal.signal(signal.SIGTERM, bye)
    signal.signal(signal.SIGINT, bye)
    with open(a.port_file + ".tmp", "w") as f:
        f.write(str(srv.server_address[1]))
    os.rename(a.port_file + ".tmp", a.port_file)
    srv.serve_forever()


if __name__ == "__main__":
    main()
