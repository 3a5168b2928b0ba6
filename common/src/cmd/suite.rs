//! ec2-tools: the suite's own entry point — what the tools are, the descriptor contract and
//! the exit codes (`ec2-tools help`), shell completions for every tool (`ec2-tools
//! completions bash|zsh|fish`) and man pages (`ec2-tools man DIR`), all generated from the
//! tools' own clap definitions so they cannot drift. `make install` puts them in place.

use crate::error::{Code, Error, Result};
use crate::tool::{self, Tool};
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// The command line of `ec2-tools` (its `--help` is the reference).
#[derive(Parser, Debug)]
#[command(
    version,
    long_about = None,
    disable_help_subcommand = true,
    about = "The ec2-tools suite: list the tools, print shell completions, write man pages",
    after_help = "Examples:
  ec2-tools help                                  the tools, the descriptor format, exit codes
  ec2-tools completions bash > ~/.local/share/bash-completion/completions/ec2-tools
  ec2-tools completions zsh --dir ~/.zfunc        one file per tool
  ec2-tools man ~/.local/share/man/man1           a man page per tool
  ec2-tools iam-policy > policy.json              the IAM policy the tools need
  ec2-tools iam-policy --features launch,s3       only what launching and results in S3 need"
)]
pub struct Cli {
    #[command(subcommand)]
    what: Option<What>,
}

#[derive(Subcommand, Debug)]
enum What {
    /// The tools, the descriptor format and the exit codes
    Help,
    /// Completions for every tool, for SHELL (bash, zsh, fish): on stdout, or one file per
    /// tool in DIR named as SHELL looks for it (`ec2-create`, `_ec2-create`, `ec2-create.fish`)
    Completions {
        #[arg(value_name = "SHELL")]
        shell: clap_complete::Shell,
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// The least-privilege IAM policy for what the tools call (JSON, on stdout): for every
    /// feature, or those named (launch is always in); changes are scoped to what the tools
    /// tagged. Put your bucket and instance role in place of YOUR-RESULTS-BUCKET and
    /// YOUR-INSTANCE-ROLE
    IamPolicy {
        #[arg(long, value_enum, value_delimiter = ',', value_name = "FEATURE,…")]
        features: Vec<crate::policy::Feature>,
    },
    /// Write a man page per tool (and ec2-tools.1) into DIR
    Man {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
    /// Hold the SSH sessions of the test case whose state directory is DIR open, for IDLE
    /// after the last use (started by the tools themselves; see `persist`)
    #[command(hide = true)]
    SessionHolder {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        #[arg(value_name = "IDLE", value_parser = crate::config::parse_duration)]
        idle: std::time::Duration,
    },
}

/// Every tool's command line, as its binary builds it (name, `-v`, the settings table).
pub fn commands() -> Vec<clap::Command> {
    use super::*;
    vec![
        tool::command::<create::Cli>("ec2-create"),
        tool::command::<exec_remote::Cli>("ec2-exec-remote"),
        tool::command::<exec_local::Cli>("ec2-exec-local"),
        tool::command::<files::PutCli>("ec2-put"),
        tool::command::<files::GetCli>("ec2-get"),
        tool::command::<report::Cli>("ec2-report"),
        tool::command::<status::Cli>("ec2-status"),
        tool::command::<login::Cli>("ec2-ssh"),
        tool::command::<lifecycle::StopCli>("ec2-stop"),
        tool::command::<lifecycle::StartCli>("ec2-start"),
        tool::command::<lifecycle::RebootCli>("ec2-reboot"),
        tool::command::<lifecycle::RevertCli>("ec2-revert"),
        tool::command::<bake::Cli>("ec2-bake"),
        tool::command::<hosts::Cli>("ec2-hosts"),
        tool::command::<killall::Cli>("ec2-killall"),
    ]
}

const OVERVIEW: &str = "\
A test case is a directory: one JSON descriptor per instance, named by its id.

  mkdir testcase1 && cd testcase1
  ec2-create 5                               launch, wait for SSH, write descriptors
  ec2-exec-remote 'tar xzf b.tgz && ./load.sh' -bg
  ec2-get results.csv out/                   each instance's file into out/<index>-<id>/
  ec2-report out/                            the answer: merged, graded, one page of charts
  ec2-killall                                terminate everything this directory launched

Descriptor: {\"id\", \"index\", \"case\", \"region\", \"az\", \"type\", \"ami\", \"state\",
\"public_dns\", \"public_ip\", \"private_ip\", \"private_dns\", \"address\",
\"ssh\": {\"user\", \"port\", \"host_key\"}, \"launched_at\", \"role\", \"market\"}.

Exit codes (every tool): 0 all succeeded; 1 some instance failed (the rest ran);
2 usage, configuration or bad input; 3 AWS/SSH infrastructure failure or timeout;
130 interrupted.";

/// The `ec2-tools` dispatcher.
pub struct Suite;

impl Tool for Suite {
    type Cli = Cli;

    fn run(cli: Cli) -> Result<Code> {
        match cli.what.unwrap_or(What::Help) {
            What::Help => {
                let mut text = String::from("Tools (each has --help):\n");
                for c in commands() {
                    let about = c.get_about().map(|a| a.to_string()).unwrap_or_default();
                    let first = about.split(';').next().unwrap_or_default();
                    text.push_str(&format!("  {:<16} {first}\n", c.get_name()));
                }
                text.push('\n');
                text.push_str(OVERVIEW);
                crate::output::data(text);
            }
            What::IamPolicy { features } => {
                let doc = crate::policy::document(&features);
                crate::output::data(serde_json::to_string_pretty(&doc).expect("plain data"));
            }
            What::Completions { shell, dir } => {
                let mut all = Vec::new();
                for mut c in commands() {
                    let name = c.get_name().to_owned();
                    let mut out = Vec::new();
                    clap_complete::generate(shell, &mut c, name.clone(), &mut out);
                    match &dir {
                        Some(d) => {
                            let file = match shell {
                                clap_complete::Shell::Zsh => format!("_{name}"),
                                clap_complete::Shell::Fish => format!("{name}.fish"),
                                _ => name.clone(),
                            };
                            let path = d.join(file);
                            std::fs::create_dir_all(d)
                                .and_then(|_| std::fs::write(&path, &out))
                                .map_err(|e| Error::input(format!("{}: {e}", path.display())))?;
                            crate::output::data(path.display().to_string());
                        }
                        None => all.extend(out),
                    }
                }
                if dir.is_none() {
                    crate::output::data(String::from_utf8_lossy(&all).trim_end());
                }
            }
            What::SessionHolder { dir, idle } => {
                crate::remote::holder::serve(&dir, idle)
                    .map_err(|e| Error::infra(format!("session holder: {e}")))?;
            }
            What::Man { dir } => {
                std::fs::create_dir_all(&dir)
                    .map_err(|e| Error::input(format!("{}: {e}", dir.display())))?;
                let mut all = commands();
                all.push(<Cli as clap::CommandFactory>::command().name("ec2-tools"));
                for c in all {
                    let path = dir.join(format!("{}.1", c.get_name()));
                    let mut page = Vec::new();
                    clap_mangen::Man::new(c)
                        .render(&mut page)
                        .map_err(|e| Error::infra(format!("{}: {e}", path.display())))?;
                    std::fs::write(&path, page)
                        .map_err(|e| Error::infra(format!("{}: {e}", path.display())))?;
                    crate::output::data(path.display().to_string());
                }
            }
        }
        Ok(Code::Ok)
    }
}
