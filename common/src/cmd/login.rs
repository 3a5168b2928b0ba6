//! ec2-ssh: log in to one instance with OpenSSH's own `ssh` — a real terminal, agent
//! forwarding on request, everything ssh does — through the case's generated `ssh_config`, so
//! the host key pinned at first contact is enforced (`StrictHostKeyChecking yes`).
//!
//! The address is checked against `EC2_TOOLS_SSH_ALLOW` before ssh is started; then this
//! process becomes ssh (exec), and ssh's exit code is ours.

use crate::case::descriptor::{is_descriptor_id, Descriptor};
use crate::case::select::select_some;
use crate::case::store::Store;
use crate::cli::{DirArgs, SshArgs};
use crate::error::{Code, Error, Result};
use crate::remote::ssh::{check_identity, resolve, Target};
use crate::remote::sshconf;
use crate::tool::Tool;
use clap::Parser;

/// The command line of `ec2-ssh` (its `--help` is the reference).
#[derive(Parser, Debug)]
#[command(
    version,
    long_about = None,
    about = "Log in to one instance of the case with OpenSSH (its host key pinned): \
ec2-ssh [INDEX|ID] [CMD…]; without CMD an interactive shell on a terminal",
    after_help = "Examples:
  ec2-ssh                                         a shell on the lowest index
  ec2-ssh 3 tail -f load.log                      follow a log on instance 3
  ec2-ssh -A i-0abc1234def567890                  with agent forwarding"
)]
pub struct Cli {
    /// The instance: its index (as `--select` takes it) or its id [default: the lowest index]
    #[arg(value_name = "INDEX|ID")]
    target: Option<String>,
    /// A command to run instead of a login shell (every word after it is the command's)
    #[arg(
        value_name = "CMD",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    command: Vec<String>,
    /// Forward the ssh-agent connection (ssh -A)
    #[arg(short = 'A', long)]
    forward_agent: bool,
    #[command(flatten)]
    dir: DirArgs,
    #[command(flatten)]
    ssh: SshArgs,
}

/// The `ec2-ssh` tool.
pub struct Login;

impl Tool for Login {
    type Cli = Cli;

    fn run(cli: Cli) -> Result<Code> {
        let settings = cli.dir.settings()?;
        let ssh = cli.ssh.resolve(&settings)?;
        check_identity(&ssh)?;
        let store = Store::new(settings.dir());
        let all = select_some(&store, &Default::default())?;
        let d = pick(&all, cli.target.as_deref())?;
        if ssh.transport_for(std::slice::from_ref(d)) == crate::config::Transport::Ssm {
            return Err(Error::input(format!(
                "{}: reached over SSM (transport ssm): no SSH login; run commands with \
                 ec2-exec-remote, or open a shell with `aws ssm start-session --target {}`",
                d.label(),
                d.id
            )));
        }
        let target = Target::for_descriptor(d, &ssh).map_err(|e| Error::input(e.message))?;
        resolve(&target, &ssh)
            .map_err(|e| Error::infra(format!("{}: {}", d.label(), e.message)))?;
        sshconf::write(&store, &ssh)?;
        let mut cmd = std::process::Command::new("ssh");
        cmd.arg("-F").arg(sshconf::config_path(&store));
        if cli.forward_agent {
            cmd.arg("-A");
        }
        if cli.command.is_empty() {
            cmd.arg("-t");
        }
        cmd.arg(&d.id);
        if !cli.command.is_empty() {
            cmd.arg("--").args(&cli.command);
        }
        use std::os::unix::process::CommandExt;
        let err = cmd.exec(); // returns only on failure
        Err(Error::infra(format!("cannot run ssh: {err}")))
    }
}

/// The instance a target names: an index or an id; none → the lowest index.
fn pick<'a>(all: &'a [Descriptor], target: Option<&str>) -> Result<&'a Descriptor> {
    let found = match target {
        None => all.iter().min_by_key(|d| d.index),
        Some(t) if is_descriptor_id(t) => all.iter().find(|d| d.id == t),
        Some(t) => match t.parse::<u32>() {
            Ok(i) => all.iter().find(|d| d.index == i),
            Err(_) => {
                return Err(Error::input(format!(
                    "{t:?} is neither an index nor an instance id"
                )))
            }
        },
    };
    found.ok_or_else(|| {
        Error::input(format!(
            "no instance {} in this case",
            target.unwrap_or_default()
        ))
    })
}
