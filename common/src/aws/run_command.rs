//! The SSM transport: a task (a command, a job script) run on hosts through Systems Manager's
//! Run Command instead of SSH logins from here, ending in the same outcomes, output, summary
//! and exit codes as the SSH path (remote/fanout.rs).
//!
//! How: one `SendCommand` per 50 hosts, or one to the case's tag when the whole case is
//! selected and its script fits (ssm_plan.rs, pure); `MaxConcurrency` is `-f`, `MaxErrors` 100 %
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
use super::ssm_plan::{blobs, cut_note, next_interval, plan, Batch, Fetched};
use crate::case::descriptor::Descriptor;
use crate::config::SshConfig;
use crate::error::{Error, Result};
use crate::remote::command::Stream;
use crate::remote::failure::{Kind, SshError};
use crate::remote::fanout::{Judge, RunOpts};
use crate::remote::results::{Collector, Outcome, Status};
use crate::remote::ssm_script::gzip;
use crate::remote::task::{Done, Task};
use std::collections::HashMap;
use std::time::{Duration, Instant};

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
    let users = login_users(cfg, hosts);
    let planned = plan(task, hosts, &users, case_tag.clone(), None);
    let far = match &planned {
        Err(r) if r.too_big && cfg.ssm_bucket.is_some() => true,
        Err(r) => return Err(Error::input(r.message.clone())),
        Ok(_) => false,
    };
    let names = crate::remote::fanout::names(hosts, cfg);
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

/// Each host's login user: the descriptor's, else the setting's.
fn login_users(cfg: &SshConfig, hosts: &[Descriptor]) -> Vec<String> {
    hosts
        .iter()
        .map(|d| {
            d.ssh
                .user
                .clone()
                .or_else(|| cfg.user.clone())
                .unwrap_or_else(|| cfg.fallback_user.clone())
        })
        .collect()
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
                    self.not_reached(c, state);
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
        Ok(self.judged(i, sink, r))
    }

    /// Host `i`'s end as the tool judges it, presented through its sink.
    fn judged(
        &self,
        i: usize,
        sink: crate::remote::results::HostSink,
        r: std::result::Result<Done, SshError>,
    ) -> Outcome {
        let status = (self.judge)(&self.hosts[i], &self.names[i], r, &sink);
        let o = Outcome::new(
            &self.hosts[i],
            self.names[i].clone(),
            status,
            self.began.elapsed(),
        );
        self.collector.done(sink, &o);
        o
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
                let sink = self.collector.host(&self.hosts[i], &self.names[i]);
                h.outcome = Some(self.judged(i, sink, Err(SshError::new(kind, why.clone()))));
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

    /// The hosts of command `c` that its (tag) target never reached: they fail, not started.
    fn not_reached(&self, c: usize, state: &mut [Host]) {
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
