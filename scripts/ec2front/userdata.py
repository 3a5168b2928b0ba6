"""User data, read the way cloud-init reads it: base64 as RunInstances got it, gzip or not, a
MIME multipart archive (nested ones too) or one part, each part by its Content-Type (or, for a
single part, its first line). What runs is what cloud-init's scripts-user stage runs: shell
scripts (`#!`, text/x-shellscript) and a cloud-config's `runcmd` (as one script), in the
order of their names, once per instance. Everything else cloud-init would do (packages,
users, write_files, bootcmd, boothooks, includes, jinja templates) is named in the log as not
run. What does not belong here: running them (machines.py: as the machine's user, in its
namespaces)."""
import base64
import binascii
import email
import gzip
import shlex

import yaml


def decode(b64):
    """The user data's bytes (gunzipped), or b"" when there is none or it is not base64."""
    if not b64:
        return b""
    try:
        raw = base64.b64decode(b64, validate=False)
    except (binascii.Error, ValueError):
        return b""
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except OSError:
            return b""
    return raw


def _kind(ctype, payload):
    if ctype in ("text/x-shellscript",) or (ctype in ("text/plain", "") and
                                             payload.startswith(b"#!")):
        return "script"
    if ctype == "text/cloud-config" or (ctype in ("text/plain", "") and
                                        payload.startswith(b"#cloud-config")):
        return "cloud-config"
    return ctype or "unknown"


def parts(raw):
    """[(name, kind, payload)] of the user data, in archive order."""
    if not raw:
        return []
    if raw.startswith((b"Content-Type:", b"MIME-Version:")):
        out = []
        n = 0
        for part in email.message_from_bytes(raw).walk():
            if part.is_multipart():
                continue
            payload = part.get_payload(decode=True) or b""
            n += 1
            name = part.get_filename() or "part-%03d" % n
            out.append((name, _kind(part.get_content_type(), payload), payload))
        return out
    return [("user-data", _kind("", raw), raw)]


def scripts(raw):
    """What cloud-init's scripts-user stage would run: [(name, script bytes)] sorted by name,
    and the names of what it would do that is not run here."""
    run, skipped = {}, []
    for name, kind, payload in parts(raw):
        if kind == "script":
            run[name] = payload
        elif kind == "cloud-config":
            try:
                doc = yaml.safe_load(payload) or {}
            except yaml.YAMLError:
                skipped.append(name + " (not YAML)")
                continue
            for key in doc:
                if key != "runcmd":
                    skipped.append("%s: %s" % (name, key))
            cmds = doc.get("runcmd") or []
            lines = [c if isinstance(c, str) else shlex.join(str(x) for x in c) for c in cmds]
            if lines:
                run["runcmd"] = ("#!/bin/sh\n" + "\n".join(lines) + "\n").encode()
        else:
            skipped.append("%s (%s)" % (name, kind))
    return sorted(run.items()), skipped
