#!/usr/bin/env python3
"""make soak: the example test cases, N times (default 20), on the realistic local cloud, each
run with faults drawn at random — throttling, 500s, lost answers, slow boots, capacity errors,
a machine's sshd killed mid-run, the test case killed at a random moment and run again — and
after each run the emulator must hold nothing of the case: no instance that is not terminated,
no security group, key pair, network, placement group, image or open spot request tagged with
it. One line per run, a total, exit 1 if anything was left.

    .venv/bin/python scripts/soak.py [--runs N] [--seed S] [--cases tripcom,master-slaves]

Runs only against the local cloud it starts (loopback); the tools are target/debug's."""
import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import boto3

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REALISTIC = {"pending_s": [5, 17], "not_found_s": [1, 4], "shutting_down_s": [3, 8],
             "console_s": [0, 40]}
# Each fault as the front's per-caller configuration (scripts/ec2front/faults.py).
FAULTS = {
    "throttling": lambda r: {"throttle": round(r.uniform(0.05, 0.2), 2)},
    "500s": lambda r: {"error500": round(r.uniform(0.02, 0.08), 2)},
    "lost-answers": lambda r: {"lost_answers": 2,
                               "lost_actions": ["RunInstances", "TerminateInstances"]},
    "slow-boots": lambda r: {"boot_s": [20, 35]},
    "capacity": lambda r: {"capacity": [{"az": "us-east-1a"}]},
}
EVENTS = ("sshd-killed", "case-killed")
RUNNING = []  # the example's process, killed (its group) if the soak itself is stopped


def start_cloud(state):
    out = subprocess.run([os.path.join(REPO, "scripts/localcloud"), "start", "--state", state,
                          "--realistic", "--watch", str(os.getpid())],
                         check=True, capture_output=True, text=True).stdout
    env = {}
    for line in out.splitlines():
        if line.startswith("export "):
            k, _, v = line[len("export "):].partition("=")
            env[k] = subprocess.run(["bash", "-c", "printf %s " + v], capture_output=True,
                                    text=True).stdout
    return env


def post(env, path, key, doc):
    req = urllib.request.Request("%s/__proxy/%s?key=%s" % (env["AWS_ENDPOINT_URL"], path, key),
                                 data=json.dumps(doc).encode(), method="POST")
    return urllib.request.urlopen(req, timeout=10).read()


def counters(env, key):
    url = "%s/__proxy/counters?key=%s" % (env["AWS_ENDPOINT_URL"], key)
    return json.loads(urllib.request.urlopen(url, timeout=10).read())


def leftovers(env, case):
    """What of `case` the emulator still holds, by kind (asked with a key that has no faults;
    instances still shutting down are waited for, up to 30 s)."""
    ec2 = boto3.client("ec2", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                       aws_access_key_id="soak-checker", aws_secret_access_key="x")
    tag = [{"Name": "tag:ec2-tools:case", "Values": [case]}]
    deadline = time.time() + 30
    while True:
        live = [i["InstanceId"] for r in ec2.describe_instances(Filters=tag)["Reservations"]
                for i in r["Instances"] if i["State"]["Name"] != "terminated"]
        if not live or time.time() > deadline:
            break
        time.sleep(1)
    left = {
        "instances": live,
        "security_groups": [g["GroupId"] for g in
                            ec2.describe_security_groups(Filters=tag)["SecurityGroups"]],
        "key_pairs": [k["KeyName"] for k in ec2.describe_key_pairs(Filters=tag)["KeyPairs"]],
        "networks": [v["VpcId"] for v in ec2.describe_vpcs(Filters=tag)["Vpcs"]],
        "placement_groups": [p["GroupName"] for p in
                             ec2.describe_placement_groups(Filters=tag)["PlacementGroups"]],
        "images": [i["ImageId"] for i in
                   ec2.describe_images(Owners=["self"], Filters=tag)["Images"]],
        "spot_requests": [s["SpotInstanceRequestId"] for s in
                          ec2.describe_spot_instance_requests(Filters=tag)
                          ["SpotInstanceRequests"] if s["State"] in ("open", "active")],
    }
    return {k: v for k, v in left.items() if v}


def ready_ids(work):
    """The instances of the case in `work` that were logged in to (a host key pinned)."""
    out = []
    for root, _, files in os.walk(work):
        for f in files:
            if f.startswith("i-"):
                try:
                    with open(os.path.join(root, f)) as fh:
                        if json.load(fh).get("ssh", {}).get("host_key"):
                            out.append(f)
                except (OSError, ValueError):
                    pass
    return out


def kill_a_machine(env, work, rng, stop):
    """Once the case's instances are up, at a random moment of its commands: one machine's
    sshd and everything it runs killed, as a crash mid-command would (EC2 still says
    running: the case's cleanup must terminate it anyway)."""
    while not stop.is_set() and not ready_ids(work):
        time.sleep(0.2)
    time.sleep(rng.uniform(0, 3))
    ids = ready_ids(work)
    if ids and not stop.is_set():
        victim = rng.choice(ids)
        post(env, "kill-machine", "", {"id": victim})
        return victim
    return None


def run_case(name, work, env, rng, events):
    """The example's run.sh in `work`; with case-killed, killed at a random moment (SIGINT or
    SIGKILL, its trap then runs or not) and run again in the same directory."""
    script = os.path.join(REPO, "testcases", name, "run.sh")
    log = open(os.path.join(work, "run.log"), "ab")

    def start():
        p = subprocess.Popen([script, work], env=env, stdout=log, stderr=log,
                             start_new_session=True)
        RUNNING[:] = [p]
        return p
    note = ""
    if "case-killed" in events:
        p = start()
        at = rng.uniform(3, 40)
        try:
            p.wait(timeout=at)
        except subprocess.TimeoutExpired:
            sig = rng.choice([signal.SIGINT, signal.SIGKILL])
            os.killpg(p.pid, sig)
            p.wait()
            note = " (killed by %s at %.0f s, run again)" % (sig.name, at)
    p = start()
    code = p.wait(timeout=1800)
    return code, note


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=int(os.environ.get("SOAK_RUNS", 20)))
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--cases", default="tripcom,master-slaves")
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # the finally below still runs
    seed = a.seed if a.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    cases = a.cases.split(",")
    state = tempfile.mkdtemp(prefix="ec2-tools-soak-cloud-")
    os.rmdir(state)
    env = dict(os.environ)
    env.update(start_cloud(state))
    env["PATH"] = os.path.join(REPO, "target/debug") + ":" + env["PATH"]
    print("soak: %d runs, seed %d, cases %s, on %s" % (a.runs, seed, ",".join(cases),
                                                      env["AWS_ENDPOINT_URL"]), flush=True)
    total = {"faults": 0, "left": 0, "failed_cases": 0}
    began = time.time()
    try:
        for i in range(1, a.runs + 1):
            name = cases[(i - 1) % len(cases)]
            chosen = rng.sample(sorted(FAULTS), rng.randint(1, 3))
            events = [e for e in EVENTS if rng.random() < 0.35]
            faults = dict(REALISTIC)
            for f in chosen:
                faults.update(FAULTS[f](rng))
            key = "SOAK%04d%06d" % (i, rng.randrange(10 ** 6))
            case = "soak-%d-%d" % (seed % 10000, i)
            post(env, "faults", key, faults)
            run_env = dict(env, AWS_ACCESS_KEY_ID=key, EC2_TOOLS_CASE=case)
            if "capacity" in chosen:
                run_env["EC2_TOOLS_SUBNET_ID"] = "%s,%s" % (env["EC2_TOOLS_SUBNET_ID"],
                                                           env["LOCALCLOUD_SUBNET_B"])
            work = tempfile.mkdtemp(prefix="ec2-tools-soak-%d-" % i)
            stop, victim = threading.Event(), []
            killer = None
            if "sshd-killed" in events:
                killer = threading.Thread(
                    target=lambda: victim.append(kill_a_machine(env, work, rng, stop)))
                killer.start()
            t = time.time()
            code, note = run_case(name, work, run_env, rng, events)
            stop.set()
            if killer:
                killer.join()
            # The example's own cleanup (its trap: ec2-killall) is all that ran.
            left = leftovers(env, case)
            if not left:
                shutil.rmtree(work, ignore_errors=True)
            injected = sum(counters(env, key)["faults"].values())
            total["faults"] += injected
            total["left"] += sum(len(v) for v in left.values())
            total["failed_cases"] += code != 0
            print("run %2d/%d %-13s faults %-36s events %-22s case exit %d%s, %3d faults "
                  "injected, left %s (%.0f s)"
                  % (i, a.runs, name, ",".join(chosen), ",".join(events) or "-", code, note,
                     injected, json.dumps(left) if left else "0", time.time() - t),
                  flush=True)
    finally:
        for p in RUNNING:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
        subprocess.run([os.path.join(REPO, "scripts/localcloud"), "stop", "--state", state])
    print("soak: %d runs in %.0f s, %d faults injected, %d case runs exited non-zero, "
          "resources left: %d" % (a.runs, time.time() - began, total["faults"],
                                  total["failed_cases"], total["left"]), flush=True)
    sys.exit(1 if total["left"] else 0)


if __name__ == "__main__":
    main()
