//! Running a command on an open SSH session: both output streams drained together (no window
//! deadlock), the socket polled and never spun on, keepalives sent, the remote process group
//! killed on a timeout or interruption, short helper commands captured whole.
//!
//! What does not belong here: connecting and logging in (ssh.rs), which hosts and how many at
//! once (fanout.rs), what happens to the output (results.rs).

use super::ssh::{wrap, Conn, Kind, SshError};
use crate::case::descriptor::Descriptor;
use ssh2::ExtendedData;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

/// Which remote stream a chunk of output came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// How a remote command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitInfo {
    pub code: i32,
    /// Set when the command was killed by a signal (`code` is then 128 + n where known).
    pub signal: Option<String>,
}

impl Conn {
    /// Run `cmd` through the remote user's shell, feeding `stdin` (then EOF) and handing every
    /// chunk of stdout and stderr to `sink` as it arrives. Both streams are drained together
    /// (no window deadlock); the socket is polled, never spun on. `deadline` bounds the whole
    /// command; `stop` is polled to abandon it (interruption).
    pub fn exec(
        &self,
        cmd: &str,
        stdin: Option<&[u8]>,
        deadline: Option<Instant>,
        stop: &dyn Fn() -> bool,
        sink: &mut dyn FnMut(Stream, &[u8]),
    ) -> Result<ExitInfo, SshError> {
        self.exec_abortable(cmd, stdin, deadline, stop, sink, &|| {})
    }

    /// [`Conn::exec`], calling `abort` when the command is abandoned (deadline, stop) while
    /// its channel is still open — closing a channel whose command still runs would wait for
    /// that command, so `abort` is where it gets killed.
    fn exec_abortable(
        &self,
        cmd: &str,
        stdin: Option<&[u8]>,
        deadline: Option<Instant>,
        stop: &dyn Fn() -> bool,
        sink: &mut dyn FnMut(Stream, &[u8]),
        abort: &dyn Fn(),
    ) -> Result<ExitInfo, SshError> {
        let mut ch = self
            .sess
            .channel_session()
            .map_err(wrap(Kind::NotStarted, "open channel"))?;
        ch.handle_extended_data(ExtendedData::Normal)
            .map_err(wrap(Kind::Session, "channel"))?;
        ch.exec(cmd).map_err(wrap(Kind::Session, "exec"))?;
        if let Some(data) = stdin {
            ch.write_all(data)
                .map_err(|e| SshError::new(Kind::Session, format!("send stdin: {e}")))?;
        }
        ch.send_eof().map_err(wrap(Kind::Session, "send eof"))?;

        self.sess.set_blocking(false);
        let result = self.pump(&mut ch, deadline, stop, sink);
        self.sess.set_blocking(true);
        if let Err(e) = result {
            abort();
            // Do not wait long for a channel whose command may still run.
            self.sess.set_timeout(2_000);
            return Err(e);
        }
        ch.wait_close()
            .map_err(wrap(Kind::Session, "close channel"))?;
        let code = ch
            .exit_status()
            .map_err(wrap(Kind::Session, "exit status"))?;
        let signal = ch.exit_signal().ok().and_then(|s| s.exit_signal);
        let code = match (&signal, code) {
            (Some(sig), 0) => 128 + signal_number(sig),
            _ => code,
        };
        Ok(ExitInfo { code, signal })
    }

    fn pump(
        &self,
        ch: &mut ssh2::Channel,
        deadline: Option<Instant>,
        stop: &dyn Fn() -> bool,
        sink: &mut dyn FnMut(Stream, &[u8]),
    ) -> Result<(), SshError> {
        let mut buf = vec![0u8; 32 * 1024];
        let (mut out_done, mut err_done) = (false, false);
        let mut eof_spins = 0;
        let mut next_keepalive = Instant::now() + Duration::from_secs(15);
        while !(out_done && err_done) {
            let mut progressed = false;
            for (stream, done) in [
                (Stream::Stdout, &mut out_done),
                (Stream::Stderr, &mut err_done),
            ] {
                if *done {
                    continue;
                }
                let r = match stream {
                    Stream::Stdout => ch.stream(0).read(&mut buf),
                    Stream::Stderr => ch.stderr().read(&mut buf),
                };
                match r {
                    Ok(0) => *done = true,
                    Ok(n) => {
                        sink(stream, &buf[..n]);
                        progressed = true;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => {
                        return Err(SshError::new(
                            Kind::Session,
                            format!("connection lost: {e}"),
                        ))
                    }
                }
            }
            if progressed {
                continue;
            }
            // libssh2 may have taken the channel's EOF off the socket during this round and
            // still answered "would block": go round again instead of waiting on a socket
            // that has nothing more to say.
            if ch.eof() && eof_spins < 8 {
                eof_spins += 1;
                continue;
            }
            if stop() {
                return Err(SshError::new(Kind::Interrupted, "interrupted"));
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return Err(SshError::new(Kind::Timeout, "command timed out"));
            }
            if now >= next_keepalive {
                let secs = self.sess.keepalive_send().unwrap_or(15);
                next_keepalive = now + Duration::from_secs(u64::from(secs.max(1)));
            }
            let mut wait =
                Duration::from_millis(500).min(next_keepalive.saturating_duration_since(now));
            if let Some(d) = deadline {
                wait = wait.min(d.saturating_duration_since(now));
            }
            self.wait_socket(wait);
        }
        Ok(())
    }

    /// Sleep until the socket is ready in the direction libssh2 is blocked on, or `wait`.
    fn wait_socket(&self, wait: Duration) {
        let dirs = self.sess.block_directions();
        let mut events = 0;
        if matches!(
            dirs,
            ssh2::BlockDirections::Inbound
                | ssh2::BlockDirections::Both
                | ssh2::BlockDirections::None
        ) {
            events |= libc::POLLIN;
        }
        if matches!(
            dirs,
            ssh2::BlockDirections::Outbound | ssh2::BlockDirections::Both
        ) {
            events |= libc::POLLOUT;
        }
        let mut pfd = libc::pollfd {
            fd: self.fd,
            events,
            revents: 0,
        };
        let ms = wait.as_millis().clamp(1, 1000) as libc::c_int;
        // SAFETY: one valid pollfd for the duration of the call.
        unsafe {
            libc::poll(&mut pfd, 1, ms);
        }
    }

    /// Run the user's command through the remote user's shell so that it can be stopped: the
    /// command text travels on stdin (never pasted into a shell line), the wrapper reports the
    /// pid of the shell that runs it — a session and process-group leader, as sshd starts it —
    /// on a marked first stderr line, which is taken out of the output. On timeout or
    /// interruption the whole remote process group is killed (TERM, then KILL), not just the
    /// channel closed: a plain SSH client leaves such commands running.
    pub fn run_command(
        &self,
        command: &str,
        who: &[u8],
        stdin: Option<&[u8]>,
        deadline: Option<Instant>,
        stop: &dyn Fn() -> bool,
        sink: &mut dyn FnMut(Stream, &[u8]),
    ) -> Result<ExitInfo, SshError> {
        let began = Instant::now();
        tracing::info!(target: "ec2_tools::ssh", "ssh {}: exec", self.target.address);
        let pid: std::cell::Cell<Option<u32>> = std::cell::Cell::new(None);
        let mut head: Option<Vec<u8>> = Some(Vec::new());
        let kill = || {
            if let Some(p) = pid.get() {
                self.kill_group(p);
            }
        };
        let mut input = who.to_vec();
        input.extend_from_slice(stdin.unwrap_or_default());
        let r = self.exec_abortable(
            &tracked(command),
            Some(&input),
            deadline,
            stop,
            &mut |s, b| {
                if s == Stream::Stderr {
                    if let Some(h) = head.as_mut() {
                        h.extend_from_slice(b);
                        let Some(nl) = h.iter().position(|&c| c == b'\n') else {
                            return;
                        };
                        let h = head.take().unwrap();
                        let line = String::from_utf8_lossy(&h[..nl]);
                        match line.strip_prefix(PID_MARK) {
                            Some(p) => pid.set(p.trim().parse().ok()),
                            None => sink(Stream::Stderr, &h[..=nl]),
                        }
                        if h.len() > nl + 1 {
                            sink(Stream::Stderr, &h[nl + 1..]);
                        }
                        return;
                    }
                }
                sink(s, b)
            },
            &kill,
        );
        if let Some(h) = head
            .take()
            .filter(|h| !h.is_empty() && !h.starts_with(PID_MARK.as_bytes()))
        {
            sink(Stream::Stderr, &h);
        }
        match &r {
            Ok(i) => {
                tracing::info!(target: "ec2_tools::ssh", "ssh {}: exit {} after {} ms", self.target.address, i.code, began.elapsed().as_millis())
            }
            Err(e) => {
                tracing::info!(target: "ec2_tools::ssh", "ssh {}: failed after {} ms: {}", self.target.address, began.elapsed().as_millis(), e.message)
            }
        }
        r
    }

    /// An SFTP channel on this session.
    pub fn sftp(&self) -> Result<ssh2::Sftp, ssh2::Error> {
        self.sess.sftp()
    }

    /// TERM, then KILL, a remote process group (best effort, on a fresh channel).
    pub fn kill_group(&self, pgid: u32) {
        self.sess.set_timeout(5_000);
        let _ = self.run_capture(
            &format!(
                "kill -TERM -{pgid} 2>/dev/null; sleep 1; kill -KILL -{pgid} 2>/dev/null; true"
            ),
            None,
        );
    }

    /// Run a command and collect its output (for short probes and helper commands).
    pub fn run_capture(
        &self,
        cmd: &str,
        stdin: Option<&[u8]>,
    ) -> Result<(ExitInfo, Vec<u8>, Vec<u8>), SshError> {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let info = self.exec(cmd, stdin, None, &|| false, &mut |s, b| match s {
            Stream::Stdout => out.extend_from_slice(b),
            Stream::Stderr => err.extend_from_slice(b),
        })?;
        Ok((info, out, err))
    }
}

const PID_MARK: &str = "\u{1}ec2-tools-pid ";

/// Shell text that reads a remote command's identity from its first stdin lines into exported
/// variables, and the case's host list into a file (`$CURRENT_HOSTS`, `~/.ec2-tools/hosts`:
/// written aside and renamed, so a command running meanwhile reads a whole one): only the
/// names are shell text; the values travel on stdin ([`who_lines`]), so instance data is never
/// pasted into a command line.
pub const READ_WHO: &str = "IFS= read -r CURRENT_AMI_ID; IFS= read -r CURRENT_AMI_INDEX; \
IFS= read -r CURRENT_AMI_ROLE; IFS= read -r CURRENT_CASE; IFS= read -r n_; \
CURRENT_HOSTS=\"$HOME/.ec2-tools/hosts\"; [ -d \"$HOME/.ec2-tools\" ] || mkdir -p \"$HOME/.ec2-tools\"; \
{ while [ \"$n_\" -gt 0 ]; do IFS= read -r l_; printf \"%s\\n\" \"$l_\"; n_=$((n_-1)); done; } \
> \"$CURRENT_HOSTS.$$\" && mv -f \"$CURRENT_HOSTS.$$\" \"$CURRENT_HOSTS\"; unset n_ l_; \
export CURRENT_AMI_ID CURRENT_AMI_INDEX CURRENT_AMI_ROLE CURRENT_CASE CURRENT_HOSTS; ";

/// The stdin lines [`READ_WHO`] reads: instance id, index, role (empty if none), case, then
/// the case's host list ([`crate::case::descriptor::hosts_list`]) as a count and its lines.
pub fn who_lines(d: &Descriptor, hosts: &str) -> String {
    who_head(d) + &hosts_lines(hosts)
}

/// The host's own lines of [`who_lines`]: id, index, role, case.
pub fn who_head(d: &Descriptor) -> String {
    let line = |s: &str| s.replace(['\n', '\r'], " ");
    format!(
        "{}\n{}\n{}\n{}\n",
        line(&d.id),
        d.index,
        line(d.role().unwrap_or("")),
        line(&d.case),
    )
}

/// The lines of [`who_lines`] every host gets the same: the host list's count and lines.
pub fn hosts_lines(hosts: &str) -> String {
    let list: Vec<String> = hosts.lines().map(|l| l.replace('\r', " ")).collect();
    let mut out = format!("{}\n", list.len());
    for l in list {
        out.push_str(&l);
        out.push('\n');
    }
    out
}

/// The channel command of [`Conn::run_command`]: the login shell reports its pid (sshd made
/// it a session and process-group leader) and evaluates the command, quoted as one POSIX
/// single-quoted word — no extra process, so the remote cost is what `ssh host CMD` costs.
pub(crate) fn tracked(command: &str) -> String {
    format!(
        "printf '\\001ec2-tools-pid %s\\n' \"$$\" >&2; {READ_WHO}eval {}",
        sh_quote(command)
    )
}

/// `it's` → `'it'\''s'`: one word for any POSIX shell, whatever the text holds.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn signal_number(sig: &str) -> i32 {
    match sig.trim_start_matches("SIG") {
        "HUP" => 1,
        "INT" => 2,
        "QUIT" => 3,
        "KILL" => 9,
        "PIPE" => 13,
        "ALRM" => 14,
        "TERM" => 15,
        _ => 127,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_makes_one_shell_word_of_anything() {
        assert_eq!(sh_quote("echo 'a' \"$b\""), "'echo '\\''a'\\'' \"$b\"'");
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("printf %s {}", sh_quote("it's $HOME `x` \\n")))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "it's $HOME `x` \\n");
    }
}
