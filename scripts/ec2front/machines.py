"""Machines: every instance with a loopback private IP becomes its own sshd listening on that
IP -- its own home directory, /tmp, process table, hostname and boot id (mount, PID and UTS
namespaces, as root), its own
host key, and in ~/.ssh/authorized_keys the public half of the key pair it was launched with (as
cloud-init does; no key pair, no login) -- started when the instance "boots" (after a delay: the
port refuses connections, then accepts without a banner, then logs in), stopped with the
instance, restarted (new boot id) on reboot, and its disk deleted on termination. What does not
belong here: when that happens (front.py decides from the calls)."""
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
