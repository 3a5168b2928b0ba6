"""Security groups, enforced: each instance's groups become packet-filter rules for its address,
as AWS applies them at the instance's network interface, so that a test case that forgot
`--open 8080` times out here as it would on AWS.

On loopback every process's source address is 127.0.0.1 unless it binds one, so the caller and
the machines look alike by address. What tells them apart is what each machine is: every
process of a machine runs in a cgroup of its own (sshd is put in it before it starts, so
everything it runs is too), and the nat table gives a connection that starts in a machine's
cgroup that machine's private address as its source (SNAT, matched by `-m cgroup`). After that
the rules are the ones AWS states, on addresses: an instance's packets come from its private
IP (a group's self rule and its CIDR rules see it as AWS would); the caller's come from
127.0.0.1, outside every local VPC (127.N.0.0/16), so it reaches only what a group opens to its
CIDR. Network namespaces per machine were the alternative: they would need a veth pair and
routes for loopback addresses on the host (route_localnet, a rule ahead of the local table),
more state to leave behind if the front dies, for the same answer. Rules are stateful as a
group's are (replies to an allowed connection pass: conntrack ESTABLISHED) and a refused
connection is dropped, never rejected (the caller times out, as on AWS). Ingress only: egress
rules are not enforced (README). Port 22 of a group is the cloud's sshd port (every machine's
sshd listens on it). Only as root; one chain per front (named by its pid, removed when it
exits, and a dead front's chains are removed when the next one starts).

What does not belong here: when the rules change (front.py calls `apply` after the calls that
change them), what a group holds (moto answers that)."""
import ipaddress
import os
import re
import subprocess
import threading

from .common import log, parse

TAG = "ec2front:"
LOOPBACK = ipaddress.ip_network("127.0.0.0/8")


def cgroup2_root():
    """Where the cgroup v2 hierarchy is mounted (pure v2: /sys/fs/cgroup; hybrid: .../unified)."""
    with open("/proc/mounts") as f:
        for line in f:
            parts = line.split()
            if len(parts) > 2 and parts[2] == "cgroup2":
                return parts[1]
    return None


def ipt(*args, table="filter", check=True):
    return subprocess.run(["iptables", "-w", "-t", table, *args], capture_output=True,
                          text=True, check=check)


def remove_stale():
    """The jumps and chains of fronts that died without removing theirs."""
    for table, hook in (("filter", "INPUT"), ("nat", "POSTROUTING")):
        out = ipt("-S", hook, table=table, check=False).stdout
        for line in out.splitlines():
            m = re.search(r'--comment "?%s(\d+)"?' % TAG, line)
            if not m or os.path.exists("/proc/%s" % m.group(1)):
                continue
            ipt(*line.replace("-A", "-D", 1).split(), table=table, check=False)
            drop_chains(table, "EC2F%s" % m.group(1))
    root = cgroup2_root()
    for d in os.listdir(root) if root else []:
        m = re.match(r"ec2front-(\d+)$", d)
        if m and not os.path.exists("/proc/%s" % m.group(1)):
            for sub in os.listdir(os.path.join(root, d)):
                if os.path.isdir(os.path.join(root, d, sub)):
                    try:
                        os.rmdir(os.path.join(root, d, sub))
                    except OSError:
                        pass
            try:
                os.rmdir(os.path.join(root, d))
            except OSError:
                pass


def drop_chains(table, prefix):
    out = ipt("-S", table=table, check=False).stdout
    chains = [line.split()[1] for line in out.splitlines()
              if line.startswith("-N ") and re.match(prefix + r"([IG]\d+)?$", line.split()[1])]
    for c in chains:
        ipt("-F", c, table=table, check=False)
    for c in chains:
        ipt("-X", c, table=table, check=False)


def instances_from(xml):
    """DescribeInstances' answer as [(id, private ip, state, [group ids])]."""
    root, Q = parse(xml)
    out = []
    for inst in root.iter(Q + "item"):
        iid = inst.findtext(Q + "instanceId")
        if not iid:
            continue
        groups = [g.findtext(Q + "groupId") for g in inst.findall(Q + "groupSet/" + Q + "item")]
        out.append((iid, inst.findtext(Q + "privateIpAddress"),
                    inst.findtext(Q + "instanceState/" + Q + "name"), [g for g in groups if g]))
    return out


def groups_from(xml):
    """DescribeSecurityGroups' answer as {group id: [(protocol, from, to, [cidrs], [groups])]}."""
    root, Q = parse(xml)
    out = {}
    info = root.find(Q + "securityGroupInfo")
    for g in info if info is not None else []:
        perms = []
        for p in g.findall(Q + "ipPermissions/" + Q + "item"):
            cidrs = [r.findtext(Q + "cidrIp") for r in p.findall(Q + "ipRanges/" + Q + "item")]
            pairs = [r.findtext(Q + "groupId") for r in p.findall(Q + "groups/" + Q + "item")]
            perms.append((p.findtext(Q + "ipProtocol") or "-1",
                          int(p.findtext(Q + "fromPort") or -1), int(p.findtext(Q + "toPort") or -1),
                          [c for c in cidrs if c], [x for x in pairs if x]))
        out[g.findtext(Q + "groupId")] = perms
    return out


def match(proto, lo, hi):
    """The iptables match of one permission's protocol and ports ("" for all traffic)."""
    proto = {"6": "tcp", "17": "udp", "1": "icmp", "all": "-1"}.get(proto, proto)
    if proto == "-1":
        return ""
    if proto in ("tcp", "udp") and lo >= 0 and hi >= 0 and (lo, hi) != (0, 65535):
        return "-p %s --dport %d:%d" % (proto, lo, hi)
    return "-p %s" % proto


def opens_ssh(proto, lo, hi):
    return proto in ("-1", "all") or (proto in ("tcp", "6") and (lo < 0 or lo <= 22 <= hi))


def rules(chain, ssh_port, instances, groups, vpc):
    """The filter table's chains for these instances ({chain: [rule]}): pure, tested through
    the end-to-end tests of what it lets through."""
    live = [(i, ip, g) for i, ip, st, g in instances if ip and st in ("pending", "running")]
    members = {}
    for _, ip, gs in live:
        for g in gs:
            members.setdefault(g, []).append(ip)
    gchain = {g: "%sG%d" % (chain, n) for n, g in enumerate(sorted(groups))}
    out = {chain: ["-m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT"]}
    for g, name in gchain.items():
        out[name] = ["-s %s/32 -j ACCEPT" % ip for ip in members.get(g, [])]
    for n, (_, ip, gs) in enumerate(live):
        ichain = "%sI%d" % (chain, n)
        out[chain].append("-d %s/32 -j %s" % (ip, ichain))
        perms = [p for g in gs for p in groups.get(g, [])]
        r = ["-s %s/32 -j ACCEPT" % ip]

        def allow(m, cidrs, pairs):
            r.extend("%s -s %s -j ACCEPT" % (m, c) for c in cidrs)
            r.extend("%s -j %s" % (m, gchain[p]) for p in pairs if p in gchain)

        for proto, lo, hi, cidrs, pairs in perms:
            if opens_ssh(proto, lo, hi):
                allow("-p tcp --dport %d" % ssh_port, cidrs, pairs)
        r.append("-p tcp --dport %d -j DROP" % ssh_port)
        for proto, lo, hi, cidrs, pairs in perms:
            allow(match(proto, lo, hi), cidrs, pairs)
        r.append("-j DROP")
        out[ichain] = r
    # An address of the VPC no instance has (any more): nothing answers. Other addresses (a
    # network the case made, another cloud's) are left to their own chains.
    out[chain].append("-d %s -j DROP" % vpc)
    return out


class Firewall:
    """The rules of one front's instances; see the module doc."""

    def __init__(self, ssh_port, vpc_cidr):
        self.ssh_port = ssh_port
        self.vpc = ipaddress.ip_network(vpc_cidr) if vpc_cidr else None
        self.pid = os.getpid()
        self.chain = "EC2F%d" % self.pid
        self.cg_root = cgroup2_root()
        self.on = bool(self.vpc and os.getuid() == 0 and self.cg_root)
        self.lock = threading.Lock()
        self.chains = {"filter": set(), "nat": set()}
        self.snat = {}  # id -> ip of each machine with a cgroup
        if not self.on:
            return
        try:
            remove_stale()
            self.base = os.path.join(self.cg_root, "ec2front-%d" % self.pid)
            os.makedirs(self.base, exist_ok=True)
            self.restore({"filter": {self.chain: ["-d %s -j DROP" % self.vpc]},
                          "nat": {self.chain: []}})
            comment = ["-m", "comment", "--comment", TAG + str(self.pid)]
            ipt("-I", "INPUT", "-d", str(LOOPBACK), *comment, "-j", self.chain)
            ipt("-I", "POSTROUTING", *comment, "-j", self.chain, table="nat")
        except (OSError, subprocess.CalledProcessError) as e:
            log("security groups not enforced: %s" % getattr(e, "stderr", e))
            self.on = False

    def cgroup(self, iid):
        """The machine's cgroup directory (made now), or None when rules are not enforced."""
        if not self.on:
            return None
        d = os.path.join(self.base, iid)
        os.makedirs(d, exist_ok=True)
        return d

    @staticmethod
    def on_loopback(ip):
        """An address a machine listens on (every local VPC, and networks tests make)."""
        try:
            return bool(ip) and ipaddress.ip_address(ip) in LOOPBACK and ip != "127.0.0.1"
        except ValueError:
            return False

    def apply(self, instances_xml, groups_xml, machines):
        """Rules for what DescribeInstances and DescribeSecurityGroups say now; `machines` is
        {id: ip} of the machines with a cgroup (their connections get their address)."""
        if not self.on:
            return
        insts = [i for i in instances_from(instances_xml) if self.on_loopback(i[1])]
        filt = rules(self.chain, self.ssh_port, insts, groups_from(groups_xml), self.vpc)
        rel = os.path.relpath(self.base, self.cg_root)
        nat = {self.chain: ["-m cgroup --path %s/%s -j SNAT --to-source %s" % (rel, iid, ip)
                            for iid, ip in sorted(machines.items())
                            if os.path.isdir(os.path.join(self.base, iid))]}
        with self.lock:
            self.restore({"filter": filt, "nat": nat})

    def restore(self, tables):
        text = ""
        for table, chains in tables.items():
            old = self.chains[table] - set(chains)
            text += "*%s\n" % table
            text += "".join(":%s - [0:0]\n" % c for c in sorted(set(chains) | old))
            for c, rs in chains.items():
                text += "".join("-A %s %s\n" % (c, r) for r in rs)
            text += "COMMIT\n"
            self.chains[table] = set(chains) | old
        p = subprocess.run(["iptables-restore", "-w", "--noflush"], input=text, text=True,
                           capture_output=True)
        if p.returncode != 0:
            log("iptables-restore refused the rules: %s" % p.stderr.strip())

    def close(self):
        if not self.on:
            return
        comment = ["-m", "comment", "--comment", TAG + str(self.pid)]
        ipt("-D", "INPUT", "-d", str(LOOPBACK), *comment, "-j", self.chain, check=False)
        ipt("-D", "POSTROUTING", *comment, "-j", self.chain, table="nat", check=False)
        for table in ("filter", "nat"):
            drop_chains(table, self.chain)
        for d in os.listdir(self.base):
            try:
                os.rmdir(os.path.join(self.base, d))
            except OSError:
                pass
        try:
            os.rmdir(self.base)
        except OSError:
            pass
