"""Faults, configured per caller at run time (POST /__proxy/faults?key=AKID): throttling,
errors, latency, token buckets, capacity, ids not visible yet, permissions denied; and the
counters a test reads back (GET /__proxy/counters). What does not belong here: what a call
does once it gets through (front.py)."""
from dataclasses import dataclass
import time

from .common import LOCK, ids_in, new_rng


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
        self.rng = new_rng(faults.get("seed"))
        self.buckets = {a: Bucket(*v) for a, v in faults.get("buckets", {}).items()}
        self.counters = {"calls": {}, "faults": {}, "instances_launched": 0}
        self.lost = 0

    def count(self, kind, action):
        """Count one call or fault (called with LOCK held)."""
        d = self.counters[kind]
        d[action] = d.get(action, 0) + 1

    def latency(self, action):
        """The configured pause before `action` is served, in seconds."""
        lat = self.faults.get("latency_ms")
        if isinstance(lat, dict):
            lat = lat.get(action, 0)
        return (lat or 0) / 1000.0

    def loses(self, action):
        """Whether this successful answer is lost on the way back (moto did the work)."""
        f = self.faults
        if action not in f.get("lost_actions", ["RunInstances"]):
            return False
        with LOCK:
            if self.lost < f.get("lost_answers", 0):
                self.lost += 1
                return True
        after = f.get("error500_after", 0)
        return bool(after and self.rng.random() < after)


@dataclass
class Fault:
    """An error answer instead of the call's own."""
    status: int
    code: str
    message: str


THROTTLED = Fault(503, "RequestLimitExceeded", "Request limit exceeded.")
INTERNAL = Fault(500, "InternalError", "An internal error has occurred")


def choose(c, call, cloud):
    """The fault `call` gets from caller `c`, if any: denied, throttled (bucket or chance), an
    internal error, no capacity, or an instance id not visible yet. A capacity pool with room
    is recorded on the call (`call.pool`) and caps its MaxCount."""
    f, action, params = c.faults, call.action, call.params
    if action in f.get("deny", ()):
        return Fault(403, "UnauthorizedOperation",
                     "You are not authorized to perform this operation.")
    with LOCK:
        b = c.buckets.get(action)
        cost = int(params.get("MaxCount", 1)) if action == "RunInstances" else 1
        if b and not b.take(cost):
            return THROTTLED
        r = c.rng.random()
    acts = f.get("throttle_actions")
    if not acts or action in acts:
        if r < f.get("throttle", 0):
            return THROTTLED
        if r < f.get("throttle", 0) + f.get("error500", 0):
            return INTERNAL
    if action == "RunInstances":
        fault = capacity(f, call, cloud)
        if fault:
            return fault
    now = time.monotonic()
    named = ids_in(params, "InstanceId") + ids_in(params, "ResourceId")
    with LOCK:
        fresh = [i for i in named
                 if i in cloud.instances and cloud.instances[i].hidden_until > now]
    if fresh:
        return Fault(400, "InvalidInstanceID.NotFound",
                     "The instance ID '%s' does not exist" % ", ".join(fresh))
    return None


def json_fault(c, action):
    """The fault a JSON-protocol call (SSM) gets from caller `c`: its token bucket, or the
    configured throttling chance (`throttle`, limited to `throttle_actions`) -- as AWS's
    `ThrottlingException`, which the SDKs retry."""
    f = c.faults
    with LOCK:
        b = c.buckets.get(action)
        if b and not b.take(1):
            return Fault(400, "ThrottlingException", "Rate exceeded")
        r = c.rng.random()
    acts = f.get("throttle_actions")
    if (not acts or action in acts) and r < f.get("throttle", 0):
        return Fault(400, "ThrottlingException", "Rate exceeded")
    return None


def capacity(f, call, cloud):
    """The first capacity pool matching a RunInstances (subnet, type, AZ): none left is
    InsufficientInstanceCapacity; some left caps MaxCount and is taken from once launched."""
    params = call.params
    want = {"subnet": params.get("SubnetId"), "type": params.get("InstanceType"),
            "az": params.get("Placement.AvailabilityZone")
            or cloud.subnet_az.get(params.get("SubnetId"))}
    for pool in f.get("capacity", []):
        if not all(want.get(k) == v for k, v in pool.items() if k != "available"):
            continue
        left = pool.get("available", 0)
        if left >= int(params.get("MinCount", 1)):
            params["MaxCount"] = str(min(int(params.get("MaxCount", 1)), left))
            call.pool = pool
            return None
        return Fault(500, "InsufficientInstanceCapacity",
                     "We currently do not have sufficient %s capacity in the Availability "
                     "Zone you requested (%s)." % (want["type"], want["az"]))
    return None
