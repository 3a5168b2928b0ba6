"""Machines: every instance with a loopback private IP becomes its own sshd listening on that
IP -- its own home directory, /tmp, process table, hostname and boot id (mount, PID and UTS
namespaces, as root), its own
host key, and in ~/.ssh/authorized_keys the public half of the key pair it was launched with (as
cloud-init does; no key pair, no login) -- started when the instance "boots" (after a delay: the
port refuses connections, then accepts without a banner, then logs in), stopped with the
instance, restarted (new boot id) on reboot, and its disk deleted on termination. What does not
belong here: when that happens (front.py decides from the calls)."""
import base64
import hashlib
import os
import random
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid

from .common import LOCK, log, spread
from . import userdata

# The machine's shutdown, poweroff, halt and reboot: they ask the local cloud (a request file
# the front's power watcher reads) to power the machine off at a time, as systemd would.
POWER_SHIM = r"""#!/bin/sh
# The emulated machine's %(name)s (scripts/ec2front/machines.py).
req=%(dir)s/request
kind=halt; when=0
case "$(basename "$0")" in
  reboot) kind=reboot ;;
  shutdown)
    for a in "$@"; do
      case "$a" in
        -c) rm -f "$req"; exit 0 ;;
        -r|--reboot) kind=reboot ;;
        now) when=0 ;;
        +*) when=$(( ${a#+} * 60 )) ;;
      esac
    done ;;
esac
echo "$kind $(( $(date +%%s) + when ))" > "$req.tmp" && mv -f "$req.tmp" "$req"
"""


class Machines:
    """One sshd per instance address; see the module doc."""

    def __init__(self, args, firewall=None):
        self.a = args
        self.firewall = firewall
        self.root = os.path.join(args.state, "machines")
        os.makedirs(self.root, exist_ok=True)
        self.procs = {}  # id -> Popen
        self.gen = {}  # id -> generation (a stop/terminate cancels a pending boot)
        self.ip = {}
        self.keys = {}  # id -> the launch key pair's public key (OpenSSH line) or ""
        self.images = {}  # id -> the baked image's home directory it starts from
        self.image_root = os.path.join(args.state, "images")
        self.boot_s = args.boot_s
        self.user_data = {}  # id -> the user data's bytes (run once, at its first boot)
        self.on_power = None  # front: (id, "halt" | "reboot") when a machine powers itself off
        threading.Thread(target=self._power_watch, daemon=True).start()

    def _dir(self, iid):
        return os.path.join(self.root, iid)

    def boot(self, iid, ip, delay, authorized=None, image=None, user_data=None):
        if not ip or not ip.startswith("127."):
            return
        with LOCK:
            self.ip[iid] = ip
            if user_data:
                self.user_data[iid] = user_data
            if authorized is not None:
                self.keys[iid] = authorized
            if image and os.path.isdir(os.path.join(self.image_root, image, "home")):
                self.images[iid] = os.path.join(self.image_root, image, "home")
            g = self.gen[iid] = self.gen.get(iid, 0) + 1
        if self.firewall:
            self.firewall.cgroup(iid)  # before the rules are made: its address is its own
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
        power, bin_dir = os.path.join(d, "power"), os.path.join(d, "bin")
        os.makedirs(power, mode=0o700)
        os.makedirs(bin_dir)
        for name in ("shutdown", "poweroff", "halt", "reboot"):
            with open(os.path.join(bin_dir, name), "w") as f:
                f.write(POWER_SHIM % {"name": name, "dir": power})
            os.chmod(os.path.join(bin_dir, name), 0o755)
        if os.getuid() == 0:
            subprocess.run(["chown", "-R", self.a.user + ":", home, power], check=True)
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
            # Its own process table (a PID namespace: sshd is its init, and everything the
            # machine runs, detached jobs too, ends with it) and its own /tmp (a tmpfs; the
            # machine's directory, where sshd's files are, is bound back into it when the
            # local cloud's state is under /tmp).
            script = ('mount --make-rprivate / && mount --bind "$1/home" "$2" && '
                      'mount --bind "$1/boot_id" /proc/sys/kernel/random/boot_id && '
                      'mount --bind "$1" /mnt && '
                      'mount -t tmpfs -o mode=1777,size=512m tmpfs /tmp && '
                      'mkdir -p "$1" && mount --bind /mnt "$1" && umount /mnt && '
                      'hostname "$3" && shift 3 && exec "$@"')
            argv = ["unshare", "--mount", "--uts", "--pid", "--fork", "--mount-proc",
                    "--propagation", "private", "sh", "-c", script,
                    "sh", d, self.a.home, hostname] + sshd
        else:
            argv = sshd
        cg = self.firewall.cgroup(iid) if self.firewall else None
        if cg:  # every process of the machine in its cgroup (firewall.py: its source address)
            argv = ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', cg] + argv
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
            raw = self.user_data.get(iid)
        done = os.path.join(d, "user-data.done")
        if raw and os.getuid() == 0 and not os.path.exists(done):
            open(done, "w").close()  # once per instance, as cloud-init's scripts-user
            threading.Thread(target=self._run_user_data, args=(iid, d, p, raw),
                             daemon=True).start()

    def _init_pid(self, p, wait_s=60):
        """The machine's PID 1 (unshare's child) once it is sshd, or None. Not before: until
        its setup script execs sshd, the machine's home, /tmp and hostname may not be its own
        yet, and what entered it then would run on this host's (the user data's race)."""
        end = time.monotonic() + wait_s
        while time.monotonic() < end and p.poll() is None:
            try:
                with open("/proc/%d/task/%d/children" % (p.pid, p.pid)) as f:
                    pid = int(f.read().split()[0])
                with open("/proc/%d/comm" % pid) as f:
                    if f.read().strip() == "sshd":
                        return pid
            except (OSError, IndexError, ValueError):
                pass
            time.sleep(0.05)
        return None

    def _inside(self, iid, init, env, argv):
        """`argv` run as the machine's user inside its namespaces and cgroup, with only `env`
        (plus HOME, USER, PATH as a login has them); as this user without root."""
        d = self._dir(iid)
        env = ["HOME=" + self.a.home, "USER=" + self.a.user, "LOGNAME=" + self.a.user,
               "SHELL=/bin/sh", "PATH=%s/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin" % d,
               ] + ["%s=%s" % kv for kv in env.items()]
        if os.getuid() != 0 or init is None:
            return ["env", "-i", *env] + argv
        argv = ["nsenter", "--target", str(init), "--mount", "--uts", "--pid", "--",
                "setpriv", "--reuid", self.a.user, "--regid", self.a.user,
                "--init-groups", "env", "-i", *env] + argv
        cg = self.firewall.cgroup(iid) if self.firewall else None
        if cg:
            argv = ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', cg] + argv
        return argv

    def agent_run(self, iid, script, env, out, err):
        """The machine's SSM agent runs `script` (ssm.py): its process (a group of its own), or
        None when the machine is not up."""
        with LOCK:
            p = self.procs.get(iid)
        if p is None or p.poll() is not None:
            return None
        init = self._init_pid(p, wait_s=10) if os.getuid() == 0 else None
        argv = self._inside(iid, init, env, ["sh", "-c", 'cd "$HOME" 2>/dev/null; exec sh "$0"',
                                             script])
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                start_new_session=True)

    def _run_user_data(self, iid, d, p, raw):
        """The scripts cloud-init would run (userdata.py), one after the other, as the
        machine's user inside its namespaces and cgroup (never as root on this host); their
        output in the machine's cloud-init-output.log."""
        init = self._init_pid(p)
        if init is None:
            log("%s: user data not run: the machine has no init process" % iid)
            return
        run, skipped = userdata.scripts(raw)
        if skipped:
            log("%s: user data not run here: %s" % (iid, ", ".join(skipped)))
        ud = os.path.join(d, "user-data")
        os.makedirs(ud, exist_ok=True)
        with open(os.path.join(d, "cloud-init-output.log"), "ab") as out:
            for name, script in run:
                path = os.path.join(ud, name.replace("/", "_"))
                with open(path, "wb") as f:
                    f.write(script)
                os.chmod(path, 0o755)
                argv = self._inside(iid, init, {}, ["sh", path])
                r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
                log("%s: user data %s exited %d" % (iid, name, r.returncode))

    def _power_watch(self):
        """A machine that asked to power off (its shutdown, at the time it gave) is halted by
        the front as AWS would: stopped, or terminated when its shutdown behaviour says."""
        while True:
            time.sleep(0.25)
            with LOCK:
                live = list(self.procs)
            for iid in live:
                req = os.path.join(self._dir(iid), "power", "request")
                try:
                    with open(req) as f:
                        kind, at = f.read().split()[:2]
                except (OSError, ValueError):
                    continue
                if time.time() < int(at):
                    continue
                try:
                    os.remove(req)
                except OSError:
                    pass
                if self.on_power:
                    threading.Thread(target=self.on_power, args=(iid, kind), daemon=True).start()

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

    def console(self, iid, lie=False):
        """The console as cloud-init leaves it once it has printed the host keys (None before
        the machine has a key). `lie`: the keys of another machine (a console that lies)."""
        d = self._dir(iid)
        key = os.path.join(d, "liar_key" if lie else "host_key")
        if lie and not os.path.exists(key):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", iid,
                            "-f", key], check=True)
        try:
            with open(key + ".pub") as f:
                kind, blob = f.read().split()[:2]
        except (OSError, ValueError):
            return None
        host = "ip-" + self.ip.get(iid, "").replace(".", "-")
        fp = base64.b64encode(hashlib.sha256(base64.b64decode(blob)).digest()).decode().rstrip("=")
        return ("[    0.000000] Linux version 6.8.0-1021-aws (buildd@lcy02-amd64-031)\n"
                "[   11.204918] cloud-init[612]: Cloud-init v. 24.4 running 'modules:config'\n"
                "-----BEGIN SSH HOST KEY FINGERPRINTS-----\n"
                "256 SHA256:%s root@%s (ED25519)\n"
                "-----END SSH HOST KEY FINGERPRINTS-----\n"
                "-----BEGIN SSH HOST KEY KEYS-----\n"
                "%s %s root@%s\n"
                "-----END SSH HOST KEY KEYS-----\n"
                "[   12.018220] cloud-init[700]: Cloud-init v. 24.4 finished\n"
                % (fp, host, kind, blob, host))

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
