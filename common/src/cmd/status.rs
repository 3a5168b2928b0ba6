//! ec2-status: what the case looks like now, from AWS, one line per instance.
//!
//! Refreshes the descriptors (state, addresses) with one DescribeInstances, lists instances of
//! the case that AWS knows but the directory lacks as `untracked` (they cost money and no tool
//! acts on them until adopted by ec2-create or swept by `ec2-killall --case-sweep`), and with
//! `--check` tries an SSH login on each running instance. `--show-config` prints the effective
//! configuration and where each value came from, without contacting AWS (it reports settings,
//! it does not check them: a missing key file is shown, not refused).

use crate::aws::ec2::{self, InstanceInfo, TAG_MARKET, TAG_ROLE};
use crate::aws::fleet::tag_index;
use crate::case::descriptor::InstanceState;
use crate::case::select::{select, Selection};
use crate::case::store::Store;
use crate::cli::{FleetArgs, LaunchArgs};
use crate::config::{Config, SshConfig};
use crate::error::{Code, Result};
use crate::output;
use crate::remote::fanout::on_connections;
use crate::remote::ssh;
use crate::settings::Settings;
use crate::tool::Tool;
use clap::Parser;
use serde_json::json;

/// The command line of `ec2-status` (its `--help` is the reference).
#[derive(Parser, Debug)]
#[command(
    version,
    long_about = None,
    about = "One line per instance: index, id, role, state, address, \
uptime (refreshed from AWS; instances of the case without a descriptor are listed as untracked)",
    after_help = "Examples:
  ec2-status                                      index, id, role, state, address, uptime
  ec2-status --json | jq -r 'select(.role==\"master\") | .private_ip'
  ec2-status --role server --field private_ip     the server's address, for a script
  ec2-status --check                              and can each one be logged in to now?
  ec2-status --show-config                        each setting and where its value came from"
)]
pub struct Cli {
    /// Also try an SSH login on each instance now (exit 1 if any fails)
    #[arg(long)]
    check: bool,
    /// One JSON object per line
    #[arg(long, conflicts_with = "field")]
    json: bool,
    /// Print only this field of each instance, a line each (one of `--json`'s: private_ip,
    /// public_ip, address, id, index, role, …; empty where it has none): `ec2-status --role
    /// server --field private_ip`
    #[arg(long, value_name = "NAME", value_parser = parse_field)]
    field: Option<String>,
    /// Print the effective configuration and where each value came from (no AWS call)
    #[arg(long)]
    show_config: bool,
    #[command(flatten)]
    fleet: FleetArgs,
}

/// The `ec2-status` tool.
pub struct Status;

impl Tool for Status {
    type Cli = Cli;

    fn run(cli: Cli) -> Result<Code> {
        let f = cli.fleet.resolve()?;
        // The launch settings in force (from files and environment) are checked and shown too.
        LaunchArgs::default().resolve(&f.settings)?;
        if cli.show_config {
            return show_config(&f.settings, cli.json);
        }
        ssh::check_identity(&f.ssh)?;
        status(&f.cfg, &f.ssh, &f.selection, &cli)
    }
}

/// Print the effective configuration: `key value source` (or JSON lines).
fn show_config(r: &Settings, json: bool) -> Result<Code> {
    for t in r.trace() {
        if json {
            output::data(json!({"key": t.key, "value": t.value, "source": t.source.to_string()}));
        } else {
            let v = if t.value.is_empty() {
                "-"
            } else {
                t.value.as_str()
            };
            output::data(format!("{:<20} {:<40} {}", t.key, v, t.source));
        }
    }
    if !json {
        let files = r.files();
        let files = if files.is_empty() {
            "none".to_owned()
        } else {
            files
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        output::note(format!("settings files in force: {files}"));
    }
    Ok(Code::Ok)
}

/// The fields `--json` has, which `--field` prints.
const FIELDS: &[&str] = &[
    "index",
    "id",
    "role",
    "state",
    "address",
    "uptime_s",
    "launched_at",
    "tracked",
    "market",
    "private_ip",
    "public_ip",
    "private_dns",
    "public_dns",
    "az",
    "type",
    "usd_per_hour",
    "cost_usd",
    "ssh",
];

fn parse_field(s: &str) -> std::result::Result<String, String> {
    if FIELDS.contains(&s) {
        Ok(s.to_owned())
    } else {
        Err(format!("{s:?}: expected one of {}", FIELDS.join(", ")))
    }
}

/// A field as a line of text: a string as it is, `null` as nothing.
fn field_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn uptime(launched_at: Option<&str>, state: InstanceState) -> Option<u64> {
    if state != InstanceState::Running {
        return None;
    }
    let t = humantime::parse_rfc3339_weak(launched_at?).ok()?;
    std::time::SystemTime::now()
        .duration_since(t)
        .ok()
        .map(|d| d.as_secs())
}

fn human(secs: Option<u64>) -> String {
    match secs {
        Some(s) => humantime::format_duration(std::time::Duration::from_secs(s))
            .to_string()
            .replace(' ', ""),
        None => "-".into(),
    }
}

struct Row {
    index: Option<u32>,
    id: String,
    role: Option<String>,
    state: InstanceState,
    address: Option<String>,
    launched_at: Option<String>,
    tracked: bool,
    market: Option<String>,
    ssh: Option<std::result::Result<(), String>>,
    /// What a script needs beside the table: addresses, placement, type.
    net: Net,
    /// USD per hour, when known; the hours it has run (running instances).
    price: Option<f64>,
    hours: Option<f64>,
}

/// The addresses and placement `--json` carries (a script needs no descriptor-reading).
#[derive(Default)]
struct Net {
    private_ip: Option<String>,
    public_ip: Option<String>,
    private_dns: Option<String>,
    public_dns: Option<String>,
    az: Option<String>,
    instance_type: Option<String>,
}

/// refresh → rows → check → render: the exit code is 1 when an index is held twice, a
/// tracked instance is unknown to AWS, or a `--check` login fails.
fn status(cfg: &Config, ssh_cfg: &SshConfig, sel: &Selection, opts: &Cli) -> Result<Code> {
    let store = Store::new(&cfg.dir);
    let mut hosts = select(&store, sel)?;
    let mut code = if held_twice(&hosts) {
        Code::Partial
    } else {
        Code::Ok
    };
    let rt = crate::aws::runtime()?;
    let ec2 = rt.block_on(ec2::connect(cfg.region.as_deref()))?;
    let untracked = rt.block_on(refresh(&ec2, cfg, ssh_cfg, sel, &store, &mut hosts))?;
    if crate::aws::console::wanted(ssh_cfg.host_key_check) {
        // Pins trusted on first use, against the consoles now: a mismatch is exit 1.
        rt.block_on(super::verify_pins(&ec2, &store, &mut hosts));
        if hosts.iter().any(|d| d.ssh.console_keys.is_some()) {
            code = Code::Partial;
        }
    }
    let mut rows: Vec<Row> = hosts.iter().map(Row::tracked).collect();
    rows.extend(untracked.iter().map(|i| Row::untracked(i, ssh_cfg)));
    rt.block_on(price(&ec2, &store, &mut rows));
    if rows.is_empty() {
        // The rule every tool follows on a directory without a case: say so, and how to start.
        output::note(format!(
            "no instance descriptors in {} and no instance of case {} in AWS (run ec2-create there first)",
            cfg.dir.display(),
            cfg.case
        ));
    }
    if opts.check {
        for (row, c) in rows.iter_mut().zip(check(&hosts, ssh_cfg)) {
            row.ssh = c;
        }
    }
    let failed =
        |r: &Row| (r.tracked && r.state == InstanceState::Unknown) || matches!(r.ssh, Some(Err(_)));
    if rows.iter().any(failed) {
        code = Code::Partial;
    }
    for r in &rows {
        match (&opts.field, opts.json) {
            (Some(f), _) => output::data(field_text(&r.json()[f.as_str()])),
            (None, true) => output::data(r.json()),
            (None, false) => output::data(r.line()),
        }
    }
    crate::remote::sshconf::update(&store, ssh_cfg);
    Ok(code)
}

/// Each running instance's price and cost so far (`usd_per_hour`, `cost_usd` in `--json`),
/// and the case's on stderr when the table goes to a terminal (a pipeline's stderr stays
/// quiet): `cost so far: $0.0093 over 0.9 instance-hours; now $0.0312/h`.
async fn price(ec2: &ec2::Ec2, store: &Store, rows: &mut [Row]) {
    use crate::aws::cost;
    let kind = |r: &Row| {
        Some((
            r.net.instance_type.clone()?,
            r.market.as_deref() == Some("spot"),
        ))
    };
    let running = |r: &&mut Row| r.state == InstanceState::Running;
    let kinds = rows
        .iter_mut()
        .filter(running)
        .filter_map(|r| kind(r))
        .collect();
    if rows.iter().all(|r| r.state != InstanceState::Running) {
        return;
    }
    let prices = cost::prices(ec2, store, &kinds).await;
    let (mut now, mut so_far) = (Vec::new(), Vec::new());
    for r in rows.iter_mut().filter(running) {
        let Some(k) = kind(r) else { continue };
        let hours = cost::hours_since(r.launched_at.as_deref()).unwrap_or(0.0);
        r.price = prices.get(&k).and_then(|p| p.as_ref().ok()).copied();
        now.push(k.clone());
        so_far.push((k, hours));
        r.hours = Some(hours);
    }
    let hours: f64 = so_far.iter().map(|(_, h)| h).sum();
    if !std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        return;
    }
    output::note(format!(
        "cost so far: {} over {hours:.1} instance-hours; now {}/h",
        cost::ran(&so_far, &prices).show(),
        cost::hourly(&now, &prices).show()
    ));
}

/// Says so of each index two descriptors hold (edited by hand?); true if any is.
fn held_twice(hosts: &[crate::case::descriptor::Descriptor]) -> bool {
    let mut seen = std::collections::BTreeMap::new();
    let mut twice = false;
    for d in hosts {
        if let Some(other) = seen.insert(d.index, &d.id) {
            output::note(format!(
                "index {} is held by two descriptors: {other} and {} (edited by hand?); \
                 selections by index are ambiguous",
                d.index, d.id
            ));
            twice = true;
        }
    }
    twice
}

/// One DescribeInstances for the selected descriptors (states and addresses written back),
/// and, without an explicit selection, the case's live instances no descriptor holds.
async fn refresh(
    ec2: &ec2::Ec2,
    cfg: &Config,
    ssh_cfg: &SshConfig,
    sel: &Selection,
    store: &Store,
    hosts: &mut [crate::case::descriptor::Descriptor],
) -> Result<Vec<InstanceInfo>> {
    let ids: Vec<String> = hosts
        .iter()
        .filter(|d| !d.is_static())
        .map(|d| d.id.clone())
        .collect();
    let infos = if ids.is_empty() {
        vec![]
    } else {
        ec2.describe(&ids).await?
    };
    for d in hosts.iter_mut().filter(|d| !d.is_static()) {
        match infos.iter().find(|i| i.id == d.id) {
            Some(info) => {
                if info.update(d, ssh_cfg.address_mode()) {
                    store.write(d)?;
                }
            }
            None if d.is_fresh(crate::aws::errors::FRESH) => {
                output::note(format!(
                    "{}: launched moments ago and not visible in AWS yet",
                    d.label()
                ));
                d.state = Some(InstanceState::Pending);
            }
            None => {
                output::note(format!(
                    "{}: AWS does not know this instance (ec2-killall forgets it)",
                    d.label()
                ));
                d.state = Some(InstanceState::Unknown);
            }
        }
    }
    if sel.is_explicit() {
        return Ok(vec![]);
    }
    let all = store.load_all()?;
    let case = ec2
        .describe_case(&cfg.case, None, &InstanceState::LIVE)
        .await?;
    Ok(case
        .into_iter()
        .filter(|i| !all.iter().any(|d| d.id == i.id))
        .collect())
}

/// `--check`: a login that runs `true` on each running host, in parallel.
fn check(
    hosts: &[crate::case::descriptor::Descriptor],
    ssh_cfg: &SshConfig,
) -> Vec<Option<std::result::Result<(), String>>> {
    let running: Vec<_> = hosts
        .iter()
        .filter(|d| matches!(d.state(), InstanceState::Running | InstanceState::Static))
        .cloned()
        .collect();
    if ssh_cfg.transport_for(&running) == crate::config::Transport::Ssm {
        return check_over_ssm(hosts, &running, ssh_cfg);
    }
    let mut logins = on_connections(ssh_cfg, &running, CHECK_WIDTH, |_, conn| {
        match conn.run_capture("true", None)? {
            (info, _, _) if info.code == 0 => Ok(()),
            (info, _, _) => Err(ssh::SshError::new(
                ssh::Kind::Session,
                format!("`true` exited {}", info.code),
            )),
        }
    })
    .into_iter();
    hosts
        .iter()
        .map(|d| {
            if !matches!(d.state(), InstanceState::Running | InstanceState::Static) {
                return Some(Err(format!("not running ({})", d.state())));
            }
            logins.next().map(|r| r.map_err(|e| e.message))
        })
        .collect()
}

/// `--check` over SSM: `true` through Run Command on each running host (its agent online
/// and running commands is what a login is over SSH).
fn check_over_ssm(
    hosts: &[crate::case::descriptor::Descriptor],
    running: &[crate::case::descriptor::Descriptor],
    ssh_cfg: &SshConfig,
) -> Vec<Option<std::result::Result<(), String>>> {
    use crate::remote::results::{Collector, Status};
    use crate::remote::task::{Done, PerHost, Task};
    let task = Task::Script {
        script: "true".into(),
        stdin: PerHost::Same(Vec::new()),
    };
    let opts = crate::remote::fanout::RunOpts {
        width: CHECK_WIDTH,
        timeout: Some(
            ssh_cfg
                .connect_timeout
                .max(std::time::Duration::from_secs(30)),
        ),
        holder: None,
        same_instant: false,
    };
    let judge = |_: &_, _: &str, r: std::result::Result<Done, ssh::SshError>, _: &_| match r
        .and_then(Done::code)
    {
        Ok(c) => Status::Exited(c),
        Err(e) => Status::Failed(e),
    };
    let ran = Collector::new(Default::default()).and_then(|c| {
        crate::aws::run_command::run_task(&c, ssh_cfg, running, &task, &opts, &judge, None)
    });
    let mut ran = match ran {
        Ok(o) => o.into_iter(),
        Err(e) => {
            return hosts.iter().map(|_| Some(Err(e.to_string()))).collect();
        }
    };
    hosts
        .iter()
        .map(|d| {
            if !matches!(d.state(), InstanceState::Running) {
                return Some(Err(format!("not running ({})", d.state())));
            }
            ran.next().map(|o| match o.status {
                Status::Exited(0) => Ok(()),
                _ => Err(format!("over SSM: {}", o.why())),
            })
        })
        .collect()
}

/// How many hosts `--check` logs in to at once.
const CHECK_WIDTH: usize = 32;

impl Row {
    fn tracked(d: &crate::case::descriptor::Descriptor) -> Row {
        Row {
            index: Some(d.index),
            id: d.id.clone(),
            role: d.role().map(str::to_owned),
            state: d.state(),
            address: d.address.clone(),
            launched_at: d.launched_at.clone(),
            tracked: true,
            market: d.market().map(str::to_owned),
            ssh: None,
            price: None,
            hours: None,
            net: Net {
                private_ip: d.private_ip.clone(),
                public_ip: d.public_ip.clone(),
                private_dns: d.private_dns.clone(),
                public_dns: d.public_dns.clone(),
                az: d.az.clone(),
                instance_type: d.instance_type.clone(),
            },
        }
    }

    fn untracked(i: &InstanceInfo, ssh_cfg: &SshConfig) -> Row {
        Row {
            index: tag_index(i),
            id: i.id.clone(),
            role: i.tags.get(TAG_ROLE).cloned(),
            state: i.state,
            address: ssh_cfg.address_mode().pick(
                i.public_dns.as_deref(),
                i.public_ip.as_deref(),
                i.private_ip.as_deref(),
            ),
            launched_at: i.launched_at.clone(),
            tracked: false,
            market: i.tags.get(TAG_MARKET).cloned(),
            ssh: None,
            price: None,
            hours: None,
            net: Net {
                private_ip: i.private_ip.clone(),
                public_ip: i.public_ip.clone(),
                private_dns: i.private_dns.clone(),
                public_dns: i.public_dns.clone(),
                az: i.az.clone(),
                instance_type: i.instance_type.clone(),
            },
        }
    }

    /// `--json`: one object, with the addresses and placement a script needs.
    fn json(&self) -> serde_json::Value {
        let r = self;
        let mut v = json!({
            "index": r.index, "id": r.id, "role": r.role, "state": r.state,
            "address": r.address, "uptime_s": uptime(r.launched_at.as_deref(), r.state),
            "launched_at": r.launched_at, "tracked": r.tracked, "market": r.market,
            "private_ip": r.net.private_ip, "public_ip": r.net.public_ip,
            "private_dns": r.net.private_dns, "public_dns": r.net.public_dns,
            "az": r.net.az, "type": r.net.instance_type,
            "usd_per_hour": r.price,
            "cost_usd": r.price.zip(r.hours).map(|(p, h)| p * h),
        });
        if let Some(c) = &r.ssh {
            v["ssh"] = match c {
                Ok(()) => json!("ok"),
                Err(e) => json!(e),
            };
        }
        v
    }

    /// The table's line: index, id, role, state, address, uptime[, ssh].
    fn line(&self) -> String {
        let r = self;
        let mut line = format!(
            "{:<4} {:<20} {:<8} {:<13} {:<16} {:<10}",
            r.index.map(|i| i.to_string()).unwrap_or_else(|| "-".into()),
            r.id,
            r.role.as_deref().unwrap_or("-"),
            if r.tracked {
                r.state.as_str()
            } else {
                "untracked"
            },
            r.address.as_deref().unwrap_or("-"),
            human(uptime(r.launched_at.as_deref(), r.state)),
        );
        match &r.ssh {
            Some(Ok(())) => line.push_str(" ssh-ok"),
            Some(Err(e)) => line.push_str(&format!(" ssh-failed: {e}")),
            None => {}
        }
        if !r.tracked {
            line.push_str(&format!(" ({} in AWS, no descriptor)", r.state));
        }
        line.trim_end().to_owned()
    }
}
