//! The SSM transport: a task (a command, a job script) run on hosts through Systems Manager's
//! Run Command instead of SSH logins from here, ending in the same outcomes, output, summary
//! and exit codes as the SSH path (remote/fanout.rs).
//!
//! How: one `SendCommand` per 50 hosts, or one to the case's tag when the whole case is
//! selected and its script fits ([`plan`], pure); `MaxConcurrency` is `-f`, `MaxErrors` 100 %
//! (every host runs, as over SSH); the status of every host comes from
//! `ListCommandInvocations` (one call per page of 50 for the whole set, never one per host),
//! polled with a backoff that grows while nothing changes and doubles under throttling; a
//! finished host's output is fetched only when it has some: from the S3 bucket when one is
//! set, else `GetCommandInvocation`'s inline output, which SSM cuts at 24,000 characters of
//! stdout and 8,000 of stderr — said in the host's output, never silently. A timeout (`-u`)
//! or Ctrl-C sends `CancelCommand` and names the hosts that may still run it.
//!
//! What does not belong here: the script and what it carries (remote/ssm_script.rs), the calls
//! (ssm.rs), deciding which transport (cmd/transport.rs).

use super::ssm::{Fail, Invocation, Send, Ssm, Status as Inv, To};
use crate::case::descriptor::Descriptor;
use crate::config::SshConfig;
use crate::error::{Error, Result};
use crate::remote::command::Stream;
use crate::remote::failure::{Kind, SshError};
use crate::remote::fanout::{Judge, RunOpts};
use crate::remote::results::{Collector, Outcome, Status};
use crate::remote::ssh::Target;
use crate::remote::ssm_script::{gzip, host_work, script, shared, table, Data, MAX_SCRIPT};
use crate::remote::task::{Done, Task};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// SSM's inline output limits: stdout, stderr (characters).
pub const INLINE_STDOUT: usize = 24_000;
pub const INLINE_STDERR: usize = 8_000;
/// Most instance ids in one SendCommand.
pub const MAX_IDS: usize = 50;

/// One SendCommand of a run: to whom, the script, and the hosts (indexes into the run's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub to: To,
    pub script: String,
    pub hosts: Vec<usize>,
}

/// Where the data every host shares (and the table of all hosts) is when it is too large to
/// carry in the script: presigned URLs of S3 objects.
#[derive(Debug, Clone, Copy)]
pub struct Fetched<'a> {
    pub shared: &'a str,
    pub table: &'a str,
}

/// What every host of `task` reads the same, and the table of all hosts: what [`Fetched`]
/// objects hold (gzipped).
pub fn blobs(task: &Task, hosts: &[Descriptor], users: &[String]) -> (Vec<u8>, String) {
    let works: Vec<_> = hosts
        .iter()
        .enumerate()
        .filter_map(|(i, d)| host_work(task, i, d))
        .collect();
    let rows: Vec<(&str, &str, &[u8])> = hosts
        .iter()
        .zip(users)
        .zip(&works)
        .map(|((d, u), w)| (d.id.as_str(), u.as_str(), w.own.as_slice()))
        .collect();
    (shared(task), table(&rows))
}

/// The SendCommands for `task` on `hosts` (each with its login user): grouped by what they
/// run, 50 ids each, or one to `case_tag` when it names exactly these hosts and the script
/// fits. With `fetched`, the shared input and the table are the hosts' to fetch. A script over
/// [`MAX_SCRIPT`] is refused ([`Refused::too_big`]), before anything is sent.
pub fn plan(
    task: &Task,
    hosts: &[Descriptor],
    users: &[String],
    case_tag: Option<(String, String)>,
    fetched: Option<Fetched>,
) -> std::result::Result<Vec<Batch>, Refused> {
    // What runs → the hosts with their own input.
    type Group = (String, Vec<(usize, Vec<u8>)>);
    let mut groups: Vec<Group> = Vec::new();
    let common = shared(task);
    for (i, d) in hosts.iter().enumerate() {
        let w = host_work(task, i, d).ok_or_else(|| Refused {
            too_big: false,
            message: "copies over SSM go through S3 (not this path)".to_owned(),
        })?;
        match groups.iter_mut().find(|(k, _)| *k == w.text) {
            Some((_, v)) => v.push((i, w.own)),
            None => groups.push((w.text, vec![(i, w.own)])),
        }
    }
    let build = |text: &str, members: &[(usize, Vec<u8>)]| match fetched {
        Some(f) => script(text, Data::Url(f.shared), Data::Url(f.table)),
        None => {
            let rows: Vec<(&str, &str, &[u8])> = members
                .iter()
                .map(|(i, own)| (hosts[*i].id.as_str(), users[*i].as_str(), own.as_slice()))
                .collect();
            script(
                text,
                Data::Inline(&common),
                Data::Inline(table(&rows).as_bytes()),
            )
        }
    };
    let mut out = Vec::new();
    if let (Some((k, v)), [(key, members)]) = (case_tag, groups.as_slice()) {
        let s = build(key, members);
        if s.len() <= MAX_SCRIPT {
            return Ok(vec![Batch {
                to: To::Tag(k, v),
                script: s,
                hosts: members.iter().map(|(i, _)| *i).collect(),
            }]);
        }
    }
    for (key, members) in &groups {
        for chunk in members.chunks(MAX_IDS) {
            let s = build(key, chunk);
            if s.len() > MAX_SCRIPT {
                return Err(Refused {
                    too_big: true,
                    message: format!(
                        "the command, its stdin and the case's host list make a {} kB SSM \
                         script, over the {} kB one SendCommand carries here (set --ssm-bucket: \
                         the hosts then fetch them from S3)",
                        s.len() / 1000,
                        MAX_SCRIPT / 1000
                    ),
                });
            }
            out.push(Batch {
                to: To::Ids(chunk.iter().map(|(i, _)| hosts[*i].id.clone()).collect()),
                script: s,
                hosts: chunk.iter().map(|(i, _)| *i).collect(),
            });
        }
    }
    Ok(out)
}

/// Why [`plan`] refused, as data: a script too large to carry (S3 can carry its data), or
/// another reason.
#[derive(Debug)]
pub struct Refused {
    pub too_big: bool,
    pub message: String,
}

/// The next poll interval: grows by half while nothing changed (to 5 s), back to 0.5 s when
/// something did, doubled under throttling (to 20 s). Pure.
pub fn next_interval(now: Duration, changed: bool, throttled: bool) -> Duration {
    let (lo, hi) = (Duration::from_millis(500), Duration::from_secs(5));
    if throttled {
        return (now * 2).clamp(lo, Duration::from_secs(20));
    }
    if changed {
        lo
    } else {
        now.mul_f64(1.5).clamp(lo, hi)
    }
}

/// What the run did, for the log and the benchmark: calls by action.
#[derive(Debug, Default, Clone)]
pub struct Calls {
    pub send: u64,
    pub list: u64,
    pub get: u64,
    pub cancel: u64,
    pub throttled: u64,
}

/// A host's place in the run.
struct Host {
    command: Option<usize>,
    outcome: Option<Outcome>,
}

/// The run's shared pieces.
struct Run<'a> {
    ssm: Ssm,
    s3: Option<(super::s3::S3, String, String)>,
    collector: &'a Collector,
    hosts: &'a [Descriptor],
    names: Vec<String>,
    judge: &'a Judge<'a>,
    began: Instant,
    calls: Calls,
}

/// Run `task` on every host over SSM (see the module doc): one outcome per host, in order.
pub fn run_task(
    collector: &Collector,
    cfg: &SshConfig,
    hosts: &[Descriptor],
    task: &Task,
    opts: &RunOpts,
    judge: &Judge,
    case_tag: Option<(String, String)>,
) -> Result<Vec<Outcome>> {
    if hosts.is_empty() {
        return Ok(Vec::new());
    }
    let users: Vec<String> = hosts
        .iter()
        .map(|d| {
            d.ssh
                .user
                .clone()
                .or_else(|| cfg.user.clone())
                .unwrap_or_else(|| cfg.fallback_user.clone())
        })
        .collect();
    let planned = plan(task, hosts, &users, case_tag.clone(), None);
    let far = match &planned {
        Err(r) if r.too_big && cfg.ssm_bucket.is_some() => true,
        Err(r) => return Err(Error::input(r.message.clone())),
        Ok(_) => false,
    };
    let names = hosts
        .iter()
        .map(|d| {
            Target::for_descriptor(d, cfg)
                .map(|t| t.address)
                .unwrap_or_else(|_| d.id.clone())
        })
        .collect();
    let rt = super::runtime()?;
    rt.block_on(async {
        let ec2 = super::ec2::connect(hosts[0].region.as_deref()).await?;
        let s3 = match &cfg.ssm_bucket {
            Some(b) => Some((
                super::s3::connect(hosts[0].region.as_deref()).await?,
                b.clone(),
                format!("ec2-tools/{}", hosts[0].case),
            )),
            None => None,
        };
        // Too large to carry: the hosts fetch the shared input and the table from S3.
        let mut stored = Vec::new();
        let batches = match (planned, &s3) {
            (Ok(b), _) => b,
            (Err(_), Some((s3, bucket, prefix))) if far => {
                let (shared, table) = blobs(task, hosts, &users);
                let mut urls = Vec::new();
                for (name, data) in [("shared", shared), ("table", table.into_bytes())] {
                    let key = format!("{prefix}/ssm/{}-{}.gz", std::process::id(), name);
                    s3.put_bytes(bucket, &key, gzip(&data)).await?;
                    urls.push(s3.presign(bucket, &key, false, Duration::from_secs(48 * 3600)).await?);
                    stored.push(key);
                }
                let f = Fetched { shared: &urls[0], table: &urls[1] };
                plan(task, hosts, &users, case_tag, Some(f)).map_err(|r| Error::input(r.message))?
            }
            (Err(r), _) => return Err(Error::input(r.message)),
        };
        let mut run = Run {
            ssm: Ssm::new(&ec2),
            s3,
            collector,
            hosts,
            names,
            judge,
            began: Instant::now(),
            calls: Calls::default(),
        };
        let r = run.all(&batches, opts).await;
        if let Some((s3, bucket, _)) = &run.s3 {
            for key in &stored {
                let _ = s3.delete(bucket, key).await;
            }
        }
        let c = &run.calls;
        tracing::info!(target: "ec2_tools::ssm", "ssm: {} hosts: SendCommand {}, ListCommandInvocations {}, GetCommandInvocation {}, CancelCommand {}, throttled {}", hosts.len(), c.send, c.list, c.get, c.cancel, c.throttled);
        r
    })
}

impl Run<'_> {
    async fn all(&mut self, batches: &[Batch], opts: &RunOpts<'_>) -> Result<Vec<Outcome>> {
        let mut state: Vec<Host> = self
            .hosts
            .iter()
            .map(|_| Host {
                command: None,
                outcome: None,
            })
            .collect();
        let mut commands: Vec<String> = Vec::new();
        let execution_s = opts
            .timeout
            .map(|t| t.as_secs() + 5)
            .unwrap_or(172_800)
            .max(5);
        for b in batches {
            if crate::tool::interrupted() {
                break;
            }
            let send = Send {
                to: b.to.clone(),
                script: b.script.clone(),
                execution_s,
                delivery_s: 60,
                concurrency: opts.width.max(1),
                bucket: self.s3.as_ref().map(|(_, b, p)| (b.clone(), p.clone())),
                comment: format!("ec2-tools {}", self.hosts[0].case),
            };
            match self.send(&send).await {
                Ok(id) => {
                    for &i in &b.hosts {
                        state[i].command = Some(commands.len());
                    }
                    commands.push(id);
                }
                Err(Fail::NotManaged(e)) => {
                    let sent = self.send_to_managed(&send, &b.hosts, &mut state, e).await?;
                    if let Some((id, on)) = sent {
                        for i in on {
                            state[i].command = Some(commands.len());
                        }
                        commands.push(id);
                    }
                }
                Err(f) => return Err(f.error()),
            }
        }
        self.poll(&commands, &mut state, opts).await?;
        Ok(state
            .into_iter()
            .enumerate()
            .map(|(i, h)| h.outcome.unwrap_or_else(|| self.end(i, Status::NotStarted)))
            .collect())
    }

    async fn send(&mut self, s: &Send) -> std::result::Result<String, Fail> {
        let mut wait = Duration::from_millis(500);
        loop {
            self.calls.send += 1;
            match self.ssm.send(s).await {
                Ok((id, _)) => return Ok(id),
                Err(Fail::Throttled(_)) if wait < Duration::from_secs(30) => {
                    self.calls.throttled += 1;
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
                Err(f) => return Err(f),
            }
        }
    }

    /// SendCommand refused an id that is no managed node online: those hosts fail (naming
    /// what SSM needs), the rest of the batch is sent again.
    async fn send_to_managed(
        &mut self,
        send: &Send,
        batch: &[usize],
        state: &mut [Host],
        first: Error,
    ) -> Result<Option<(String, Vec<usize>)>> {
        let ids: Vec<String> = batch.iter().map(|&i| self.hosts[i].id.clone()).collect();
        let ping = self.ssm.ping_status(&ids).await.map_err(Fail::error)?;
        let (on, off): (Vec<usize>, Vec<usize>) = batch
            .iter()
            .partition(|&&i| ping.get(&self.hosts[i].id).map(String::as_str) == Some("Online"));
        if off.is_empty() {
            return Err(first);
        }
        for &i in &off {
            let why = match ping.get(&self.hosts[i].id) {
                Some(p) => format!("its SSM agent is {p}"),
                None => "not a managed node: no SSM agent registered (it needs the agent, an \
                         instance profile with AmazonSSMManagedInstanceCore and outbound 443)"
                    .to_owned(),
            };
            let o = self.end(i, Status::Failed(SshError::new(Kind::NotStarted, why)));
            state[i].outcome = Some(o);
        }
        if on.is_empty() {
            return Ok(None);
        }
        let again = Send {
            to: To::Ids(on.iter().map(|&i| self.hosts[i].id.clone()).collect()),
            ..send.clone()
        };
        let id = self.send(&again).await.map_err(Fail::error)?;
        Ok(Some((id, on)))
    }

    /// Poll every command until each of its hosts ended, the deadline passed or a signal
    /// came.
    async fn poll(
        &mut self,
        commands: &[String],
        state: &mut [Host],
        opts: &RunOpts<'_>,
    ) -> Result<()> {
        let deadline = opts.timeout.map(|t| self.began + t);
        let by_id: HashMap<&str, usize> = self
            .hosts
            .iter()
            .enumerate()
            .map(|(i, d)| (d.id.as_str(), i))
            .collect();
        let mut interval = Duration::from_millis(500);
        let mut quiet_since = Instant::now();
        let mut throttle_said = false;
        loop {
            let open: Vec<usize> = (0..commands.len())
                .filter(|c| {
                    state
                        .iter()
                        .any(|h| h.command == Some(*c) && h.outcome.is_none())
                })
                .collect();
            if open.is_empty() {
                return Ok(());
            }
            let stop = if crate::tool::interrupted() {
                Some(Kind::Interrupted)
            } else if deadline.is_some_and(|d| Instant::now() >= d) {
                Some(Kind::Timeout)
            } else {
                None
            };
            if let Some(kind) = stop {
                return self.cancel(commands, &open, state, kind, opts).await;
            }
            tokio::time::sleep(interval).await;
            let (mut changed, mut throttled) = (false, false);
            for &c in &open {
                let listed = match self
                    .ssm
                    .invocations(&commands[c], &mut self.calls.list)
                    .await
                {
                    Ok(l) => l,
                    Err(Fail::Throttled(_)) => {
                        self.calls.throttled += 1;
                        throttled = true;
                        break;
                    }
                    Err(f) => return Err(f.error()),
                };
                for inv in listed.iter().filter(|v| v.status.done()) {
                    let Some(&i) = by_id.get(inv.instance_id.as_str()) else {
                        continue;
                    };
                    if state[i].outcome.is_none() && state[i].command == Some(c) {
                        state[i].outcome = Some(self.finish(i, &commands[c], inv).await?);
                        changed = true;
                    }
                }
                // A tag target reaches the managed nodes online when it is sent: a selected
                // host it did not reach after a quiet while never will be.
                let done = listed.iter().all(|v| v.status.done());
                if done && quiet_since.elapsed() > Duration::from_secs(20) {
                    for (i, h) in state.iter_mut().enumerate() {
                        if h.command == Some(c) && h.outcome.is_none() {
                            let e = SshError::new(
                                Kind::NotStarted,
                                "SSM's tag target did not reach it (its agent was not online)",
                            );
                            h.outcome = Some(self.end(i, Status::Failed(e)));
                        }
                    }
                }
            }
            if throttled && !throttle_said {
                crate::output::note("SSM throttled the status polls: polling less often");
                throttle_said = true;
            }
            if changed {
                quiet_since = Instant::now();
            }
            interval = next_interval(interval, changed, throttled);
        }
    }

    /// A finished invocation as the host's outcome: its output (when it has any) presented,
    /// its status judged.
    async fn finish(&mut self, i: usize, command: &str, inv: &Invocation) -> Result<Outcome> {
        let mut sink = self.collector.host(&self.hosts[i], &self.names[i]);
        if !inv.listed_output.is_empty() {
            let (out, err, cut) = self.output(command, &inv.instance_id).await?;
            sink.push(Stream::Stdout, &out);
            sink.push(Stream::Stderr, &err);
            if let Some(cut) = cut {
                sink.push(Stream::Stderr, format!("ec2-tools: {cut}\n").as_bytes());
            }
        }
        let r = match inv.status {
            Inv::Success | Inv::Failed if inv.code >= 0 => Ok(Done::Exit(inv.code)),
            Inv::TimedOut if inv.details.starts_with("Delivery") => Err(SshError::new(
                Kind::NotStarted,
                "SSM could not deliver the command (DeliveryTimedOut: its agent is offline)",
            )),
            Inv::TimedOut => Err(SshError::new(
                Kind::Timeout,
                "SSM's execution timeout ended it",
            )),
            Inv::Cancelled => Err(SshError::new(Kind::Interrupted, "cancelled in SSM")),
            _ => Err(SshError::new(
                Kind::Session,
                format!("SSM: {} ({})", inv.details, inv.code),
            )),
        };
        let status = (self.judge)(&self.hosts[i], &self.names[i], r, &sink);
        let o = Outcome::new(
            &self.hosts[i],
            self.names[i].clone(),
            status,
            self.began.elapsed(),
        );
        self.collector.done(sink, &o);
        Ok(o)
    }

    /// A host's whole output: from S3 when there is a bucket, else SSM's inline output (and
    /// what SSM cut, if it did).
    async fn output(
        &mut self,
        command: &str,
        id: &str,
    ) -> Result<(Vec<u8>, Vec<u8>, Option<String>)> {
        if let Some((s3, bucket, prefix)) = &self.s3 {
            let key = |name: &str| {
                format!("{prefix}/{command}/{id}/awsrunShellScript/0.awsrunShellScript/{name}")
            };
            let out = s3
                .get_bytes(bucket, &key("stdout"))
                .await?
                .unwrap_or_default();
            let err = s3
                .get_bytes(bucket, &key("stderr"))
                .await?
                .unwrap_or_default();
            // Read once, printed or captured: not left in the bucket.
            for name in ["stdout", "stderr"] {
                let _ = s3.delete(bucket, &key(name)).await;
            }
            return Ok((out, err, None));
        }
        let mut wait = Duration::from_millis(250);
        let (out, err) = loop {
            self.calls.get += 1;
            match self.ssm.output(command, id).await {
                Ok(o) => break o,
                Err(Fail::NoInvocation | Fail::Throttled(_)) if wait < Duration::from_secs(16) => {
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
                Err(f) => return Err(f.error()),
            }
        };
        let cut = cut_note(out.chars().count(), err.chars().count());
        Ok((out.into_bytes(), err.into_bytes(), cut))
    }

    /// Ctrl-C or the deadline: CancelCommand for every host still running; they end
    /// interrupted or timed out, and the note names those that may still run it.
    async fn cancel(
        &mut self,
        commands: &[String],
        open: &[usize],
        state: &mut [Host],
        kind: Kind,
        opts: &RunOpts<'_>,
    ) -> Result<()> {
        for &c in open {
            let ids: Vec<String> = (0..state.len())
                .filter(|&i| state[i].command == Some(c) && state[i].outcome.is_none())
                .map(|i| self.hosts[i].id.clone())
                .collect();
            self.calls.cancel += 1;
            if let Err(f) = self.ssm.cancel(&commands[c], &ids).await {
                crate::output::note(format!("CancelCommand {}: {}", commands[c], f.error()));
            }
        }
        let why = match kind {
            Kind::Timeout => format!(
                "timed out after {} (CancelCommand sent)",
                humantime::format_duration(opts.timeout.unwrap_or_default())
            ),
            _ => "interrupted (CancelCommand sent)".to_owned(),
        };
        let mut names = Vec::new();
        for (i, h) in state.iter_mut().enumerate() {
            if h.outcome.is_none() && h.command.is_some() {
                names.push(self.names[i].clone());
                let e = SshError::new(kind, why.clone());
                let r: std::result::Result<Done, SshError> = Err(e);
                let sink = self.collector.host(&self.hosts[i], &self.names[i]);
                let status = (self.judge)(&self.hosts[i], &self.names[i], r, &sink);
                let o = Outcome::new(
                    &self.hosts[i],
                    self.names[i].clone(),
                    status,
                    self.began.elapsed(),
                );
                self.collector.done(sink, &o);
                h.outcome = Some(o);
            }
        }
        if !names.is_empty() {
            crate::output::note(format!(
                "SSM may still run it on these hosts until their agents get the cancel: {}",
                crate::remote::results::fold_hosts(&names)
            ));
        }
        Ok(())
    }

    fn end(&self, i: usize, status: Status) -> Outcome {
        let sink = self.collector.host(&self.hosts[i], &self.names[i]);
        let o = Outcome::new(
            &self.hosts[i],
            self.names[i].clone(),
            status,
            self.began.elapsed(),
        );
        self.collector.done(sink, &o);
        o
    }
}

/// What SSM cut of a host's inline output, in words (`None`: nothing, as far as the lengths
/// tell). Pure.
pub fn cut_note(stdout_chars: usize, stderr_chars: usize) -> Option<String> {
    let mut cut = Vec::new();
    if stdout_chars >= INLINE_STDOUT {
        cut.push("stdout was cut at 24,000 characters");
    }
    if stderr_chars >= INLINE_STDERR {
        cut.push("stderr was cut at 8,000 characters");
    }
    (!cut.is_empty()).then(|| {
        format!(
            "{} by SSM's inline output limit (set --ssm-bucket for all of it)",
            cut.join(" and ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::task::PerHost;

    fn desc(i: u32) -> Descriptor {
        serde_json::from_value(serde_json::json!({
            "id": format!("i-{i:04}"), "index": i, "case": "c1", "ssh": {}
        }))
        .unwrap()
    }

    fn task(cmd: PerHost<String>) -> Task {
        Task::Command {
            command: cmd,
            stdin: None,
            hosts: String::new(),
        }
    }

    #[test]
    fn one_send_per_fifty_ids_or_one_to_the_tag() {
        let hosts: Vec<Descriptor> = (1..=120).map(desc).collect();
        let users = vec!["u".to_owned(); hosts.len()];
        let t = task(PerHost::Same("true".into()));
        let by_ids = plan(&t, &hosts, &users, None, None).unwrap();
        let sizes: Vec<usize> = by_ids.iter().map(|b| b.hosts.len()).collect();
        assert_eq!(sizes, [50, 50, 20]);
        assert!(matches!(&by_ids[0].to, To::Ids(v) if v.len() == 50 && v[0] == "i-0001"));
        let tagged = plan(
            &t,
            &hosts,
            &users,
            Some(("ec2-tools:case".into(), "c1".into())),
            None,
        )
        .unwrap();
        assert_eq!(tagged.len(), 1);
        assert_eq!(tagged[0].to, To::Tag("ec2-tools:case".into(), "c1".into()));
        assert_eq!(tagged[0].hosts.len(), 120);
    }

    /// A fleet of `n` with the case's host list as the tools send it (random-looking ids).
    fn fleet(n: u32) -> (Vec<Descriptor>, Task) {
        let hosts: Vec<Descriptor> = (1..=n)
            .map(|i| {
                let mut d = desc(i);
                d.id = format!(
                    "i-{:017x}",
                    u64::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 4
                );
                d.private_ip = Some(format!("10.0.{}.{}", i / 250, i % 250));
                d
            })
            .collect();
        let list = crate::case::descriptor::hosts_list(&hosts);
        let t = Task::Command {
            command: PerHost::Same("./load.sh --rate 100".into()),
            stdin: None,
            hosts: list,
        };
        (hosts, t)
    }

    #[test]
    fn a_thousand_hosts_fit_one_send_per_fifty_ids() {
        let (hosts, t) = fleet(1000);
        let users = vec!["ec2-user".to_owned(); hosts.len()];
        let p = plan(&t, &hosts, &users, None, None).unwrap();
        assert_eq!(p.len(), 20);
        let biggest = p.iter().map(|b| b.script.len()).max().unwrap();
        assert!(biggest <= MAX_SCRIPT, "{biggest}");
        // The whole case by its tag: one SendCommand when its table fits.
        let tag = Some(("ec2-tools:case".to_owned(), "c1".to_owned()));
        let p = plan(&t, &hosts, &users, tag, None).unwrap();
        assert_eq!(p.len(), 1, "the whole case's script fits one SendCommand");
        assert!(p[0].script.len() <= MAX_SCRIPT);
    }

    #[test]
    fn ten_thousand_hosts_fetch_their_host_list_from_s3() {
        let (hosts, t) = fleet(10_000);
        let users = vec!["ec2-user".to_owned(); hosts.len()];
        let tag = Some(("ec2-tools:case".to_owned(), "c1".to_owned()));
        let e = plan(&t, &hosts, &users, tag.clone(), None).unwrap_err();
        assert!(e.too_big, "{}", e.message);
        let f = Fetched {
            shared: "https://b.s3.amazonaws.com/shared.gz?X-Amz-Signature=0",
            table: "https://b.s3.amazonaws.com/table.gz?X-Amz-Signature=0",
        };
        let p = plan(&t, &hosts, &users, tag, Some(f)).unwrap();
        assert_eq!((p.len(), p[0].hosts.len()), (1, 10_000));
        let by_ids = plan(&t, &hosts, &users, None, Some(f)).unwrap();
        assert_eq!(by_ids.len(), 200);
        let (shared, table) = blobs(&t, &hosts, &users);
        assert_eq!(table.lines().count(), 10_000);
        assert!(shared.starts_with(b"10000\n"));
    }

    #[test]
    fn hosts_with_different_commands_never_share_a_send() {
        let hosts: Vec<Descriptor> = (1..=4).map(desc).collect();
        let users = vec!["u".to_owned(); 4];
        let t = task(PerHost::Each(vec![
            "a".into(),
            "b".into(),
            "a".into(),
            "b".into(),
        ]));
        let p = plan(&t, &hosts, &users, Some(("k".into(), "v".into())), None).unwrap();
        let groups: Vec<Vec<usize>> = p.iter().map(|b| b.hosts.clone()).collect();
        assert_eq!(groups, [vec![0, 2], vec![1, 3]]);
    }

    #[test]
    fn a_script_past_the_budget_is_refused_before_sending() {
        let hosts = vec![desc(1)];
        // Input that does not compress (an LCG's bytes).
        let mut x: u32 = 1;
        let noise: Vec<u8> = (0..MAX_SCRIPT)
            .map(|_| {
                x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (x >> 24) as u8
            })
            .collect();
        let t = Task::Command {
            command: PerHost::Same("cat".into()),
            stdin: Some(noise),
            hosts: String::new(),
        };
        let e = plan(&t, &hosts, &["u".into()], None, None).unwrap_err();
        assert!(e.too_big && e.message.contains("--ssm-bucket"), "{e:?}");
    }

    #[test]
    fn polls_back_off_while_quiet_and_under_throttling() {
        let ms = Duration::from_millis;
        assert_eq!(next_interval(ms(500), false, false), ms(750));
        assert_eq!(next_interval(ms(4000), false, false), ms(5000));
        assert_eq!(next_interval(ms(4000), true, false), ms(500));
        assert_eq!(next_interval(ms(4000), false, true), ms(8000));
        assert_eq!(next_interval(ms(16000), false, true), ms(20000));
    }

    #[test]
    fn cut_output_is_said() {
        assert_eq!(cut_note(100, 10), None);
        let n = cut_note(24_000, 8_000).unwrap();
        assert!(n.contains("24,000") && n.contains("8,000") && n.contains("--ssm-bucket"));
    }
}
