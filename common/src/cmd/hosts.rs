//! ec2-hosts add: machines you already have, in the test case beside (or instead of) EC2
//! instances — the OpenVPN seed's "local provider", and what pdsh/clush users start from.
//! Each host gets a descriptor of the `static` kind (`h-<8 hex>`, state `static`) with its own
//! index and role, so every tool that works over SSH treats it as an instance (exec-remote,
//! exec-local, put, get, ssh, status --check, jobs, --at), the AWS tools skip it with a note,
//! ec2-create never counts it, and ec2-killall forgets it without an AWS call. The same
//! test-case script then runs on EC2 or on your own machines.

use crate::case::descriptor::{Descriptor, InstanceState, SshInfo};
use crate::case::store::Store;
use crate::cli::{resolve_case, AwsArgs, CaseArgs, DirArgs};
use crate::config::parse_host_spec;
use crate::error::{Code, Error, Result, ResultExt};
use crate::output;
use crate::tool::Tool;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// The command line of `ec2-hosts` (its `--help` is the reference).
#[derive(Parser, Debug)]
#[command(
    version,
    long_about = None,
    about = "Add machines you already have to the test case: one descriptor each (kind \
static), used by every SSH tool like an instance, skipped by the AWS tools, forgotten by \
ec2-killall",
    after_help = "Examples:
  ec2-hosts add loadgen1 loadgen2 ubuntu@10.0.0.7:2222
  ec2-hosts add --role slave --from hosts.txt     one [user@]host[:port] a line
  ec2-hosts add --role master bastion.internal && ec2-exec-remote --role master uptime"
)]
pub struct Cli {
    #[command(subcommand)]
    what: What,
    #[command(flatten)]
    dir: DirArgs,
    #[command(flatten)]
    case: CaseArgs,
    #[command(flatten)]
    json: crate::cli::JsonArgs,
}

#[derive(Subcommand, Debug)]
enum What {
    /// Describe these hosts: `[user@]host[:port]` each; prints `<id> <host>` per host
    Add {
        /// The hosts: `[user@]host[:port]` (user: the descriptor's, else ssh_user; port: 22,
        /// else ssh_port)
        #[arg(value_name = "[USER@]HOST[:PORT]")]
        hosts: Vec<String>,
        /// Also the hosts listed in FILE (`-` for stdin), one a line; `#` starts a comment
        #[arg(long, value_name = "FILE")]
        from: Option<PathBuf>,
        /// Their role (e.g. slave): `--role` selects them in every tool
        #[arg(long, value_name = "NAME")]
        role: Option<String>,
    },
}

/// The hosts given as arguments and in `--from FILE` (`-`: stdin; `#` starts a comment).
fn specs(mut specs: Vec<String>, from: Option<&std::path::Path>) -> Result<Vec<String>> {
    if let Some(f) = from {
        let text = if f.as_os_str() == "-" {
            std::io::read_to_string(std::io::stdin()).input_err("--from -")?
        } else {
            std::fs::read_to_string(f).input_err(format!("--from {}", f.display()))?
        };
        specs.extend(
            text.lines()
                .map(|l| l.split('#').next().unwrap_or_default().trim())
                .filter(|l| !l.is_empty())
                .map(str::to_owned),
        );
    }
    if specs.is_empty() {
        return Err(Error::input("no host given (HOST… or --from FILE)"));
    }
    Ok(specs)
}

/// The `ec2-hosts` tool.
pub struct Hosts;

impl Tool for Hosts {
    type Cli = Cli;

    fn run(cli: Cli) -> Result<Code> {
        cli.json.apply();
        let What::Add { hosts, from, role } = cli.what;
        let settings = cli.dir.settings()?;
        let cfg = resolve_case(&settings, &cli.case, &AwsArgs::default())?;
        // Every host checked before any descriptor is written.
        let parsed = specs(hosts, from.as_deref())?
            .iter()
            .map(|s| parse_host_spec(s).map_err(Error::input))
            .collect::<Result<Vec<_>>>()?;
        let store = Store::new(&cfg.dir);
        let _lock = store.lock()?;
        let mut existing = store.load_all()?;
        let mut next = existing.iter().map(|d| d.index).max().unwrap_or(0) + 1;
        let mut added = 0;
        for (user, host, port) in parsed {
            if let Some(d) = existing
                .iter()
                .find(|d| d.address.as_deref() == Some(&host) && d.ssh.port == port)
            {
                output::note(format!("{host}: already described ({})", d.label()));
                continue;
            }
            let d = Descriptor {
                id: static_id(&host, port, &existing),
                index: next,
                case: cfg.case.clone(),
                region: None,
                az: None,
                instance_type: None,
                ami: None,
                state: Some(InstanceState::Static),
                public_dns: None,
                public_ip: None,
                private_ip: None,
                private_dns: None,
                address: Some(host.clone()),
                ssh: SshInfo {
                    user,
                    port,
                    ..SshInfo::default()
                },
                launched_at: None,
                extra: role
                    .iter()
                    .map(|r| ("role".to_owned(), serde_json::Value::from(r.as_str())))
                    .collect(),
            };
            store.write(&d)?;
            output::record(
                serde_json::json!({"id": d.id, "index": d.index, "host": host, "role": d.role()}),
                format!("{} {host}", d.id),
            );
            existing.push(d);
            next += 1;
            added += 1;
        }
        output::note(format!(
            "described {} of your own as #{}…; the AWS tools leave them alone",
            output::count(added, "host"),
            next - added as u32
        ));
        let ssh = crate::cli::SshArgs::default().resolve(&settings)?;
        crate::remote::sshconf::update(&store, &ssh);
        Ok(Code::Ok)
    }
}

/// `h-` + 8 hex digits of a stable hash (FNV-1a) of `host:port`, unique among `existing`.
fn static_id(host: &str, port: Option<u16>, existing: &[Descriptor]) -> String {
    let mut salt = 0u32;
    loop {
        let key = format!("{host}:{}#{salt}", port.unwrap_or(0));
        let h = key.bytes().fold(0x811c_9dc5u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        });
        let id = format!("h-{h:08x}");
        if !existing.iter().any(|d| d.id == id) {
            return id;
        }
        salt += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_ids_are_stable_descriptor_names_and_never_collide() {
        let a = static_id("loadgen1", None, &[]);
        assert_eq!(a, static_id("loadgen1", None, &[]));
        assert!(crate::case::descriptor::is_static_id(&a), "{a}");
        assert_ne!(a, static_id("loadgen1", Some(2222), &[]));
    }
}
