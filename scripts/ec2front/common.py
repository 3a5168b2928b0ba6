"""What every part of the front shares: the one lock, EC2's XML, its error documents, and the
small helpers that read request parameters. Nothing with state of its own belongs here."""
import random
import sys
import threading
import uuid
import xml.etree.ElementTree as ET

# Guards every piece of the front's state (cloud.py) and ElementTree's namespace registry.
LOCK = threading.Lock()

EC2_NS = "http://ec2.amazonaws.com/doc/2016-11-15/"


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


def spread(v, rng):
    """A duration from a fault setting: N seconds, or uniform in [LO, HI]."""
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
    """The instance ids among the parameters starting with `prefix` (InstanceId.1, …)."""
    return [v for k, v in params.items() if k.startswith(prefix) and v.startswith("i-")]


def new_rng(seed=None):
    return random.Random(seed)
