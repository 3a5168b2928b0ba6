"""The front's state, as one object: the callers' faults, what it adds to moto's instances,
RunInstances answers kept for their ClientTokens, placement groups. Every field is guarded by
common.LOCK; records are dataclasses. What does not belong here: the machines (machines.py)."""
from dataclasses import dataclass
import threading

from .faults import Caller
from .common import LOCK
from .placement import Placement


@dataclass
class Instance:
    """What AWS shows of an instance and moto does not (monotonic seconds): pending until,
    unknown to every call until (eventual consistency), shutting-down until, its console
    without cloud-init's host keys until."""
    pending_until: float = 0.0
    hidden_until: float = 0.0
    shutdown_until: float = 0.0
    console_after: float = 0.0
    # InstanceInitiatedShutdownBehavior ("stop" unless RunInstances said "terminate"), and
    # the headers of the call that launched it (the front's own calls for it, as its caller).
    on_shutdown: str = "stop"
    headers: dict = None
    key: str = ""
    # Systems Manager (ssm.py): its instance profile's name ("" without one), when its agent
    # registers (after each boot), whether it was ever seen online.
    profile: str = ""
    ssm_after: float = 0.0
    ssm_seen: bool = False


@dataclass
class Answer:
    """A RunInstances answer kept for its ClientToken, with the request it answered."""
    status: int
    body: bytes
    sent: dict


@dataclass
class InFlight:
    """A RunInstances with a ClientToken being served: `done` is set once it is answered."""
    done: threading.Event
    sent: dict


class Cloud:
    def __init__(self, defaults, subnet_az):
        self.defaults = defaults  # faults for callers never configured (realistic mode)
        self.subnet_az = subnet_az  # subnet id -> AZ, for capacity faults by AZ
        self.callers = {}  # access key -> Caller
        self.instances = {}  # instance id -> Instance
        self.tokens = {}  # (key, client token) -> Answer
        self.inflight = {}  # (key, client token) -> InFlight
        self.placement = Placement()
        self.secrets = {}  # access key -> secret, for IAM users a test made (front.signed)
        self.profiles = {}  # instance profile name -> when EC2 sees it (IAM propagates)
        # moto serves one call at a time: it is not thread-safe (see front.py).
        self.upstream = threading.Lock()

    def caller(self, key):
        with LOCK:
            if key not in self.callers:
                self.callers[key] = Caller(dict(self.defaults))
            return self.callers[key]

    def configure(self, key, faults):
        with LOCK:
            self.callers[key] = Caller(faults)
