//! The library's face: a test case driven from another Rust program instead of a shell
//! script — the same work as the tools, with the results handed back as data.
//!
//! A [`TestCase`] is a test-case directory and its settings (the same layers as the tools':
//! `ec2-tools.json` here and in the parents, the environment, defaults), plus what the program
//! [sets](TestCase::set), which ranks as a flag. Each operation runs the tool's own code
//! (cmd/) with the tool's own parser for its options, so defaults, checks and exit-code
//! meanings are written once; what the tool would print on stdout comes back instead. Notes
//! (what was reused, what was terminated) still go to stderr, as `ec2-tools: …` lines.
//!
//! What does not belong here: any behaviour of its own. An operation a tool lacks is added to
//! the tool first.

use crate::case::descriptor::Descriptor;
use crate::case::store::Store;
use crate::cmd::{create, exec_remote, killall};
use crate::error::{Error, Result};
use crate::remote::results::HostRun;
use crate::settings::Settings;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A test case: one directory holding one descriptor per instance.
///
/// ```no_run
/// use ec2_tools::{CreateOptions, TestCase};
///
/// fn main() -> ec2_tools::Result<()> {
///     std::fs::create_dir_all("load-test-1").unwrap();
///     let mut case = TestCase::open("load-test-1")?;
///     case.set("instance_type", "c6i.large")?.set("ttl", "2h")?;
///     let fleet = case.create_with(&CreateOptions { role: Some("worker".into()), ..CreateOptions::new(4) })?;
///     println!("{} ready", fleet.ready.len());
///     for run in case.exec("nproc")? {
///         println!("{}: {}", run.address, String::from_utf8_lossy(&run.stdout).trim());
///     }
///     case.killall()?;
///     Ok(())
/// }
/// ```
pub struct TestCase {
    settings: Settings,
}

/// How [`TestCase::create_with`] brings the case to its size (`ec2-create`'s options).
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// How many instances (of the role) the case must hold: running ones are reused, stopped
    /// ones started, only the missing launched.
    pub count: u32,
    /// The role of these instances; `count` counts this role only.
    pub role: Option<String>,
    /// Launch `count` more, whatever the case holds.
    pub add: bool,
    /// Terminate instances of the role above this many, highest index first.
    pub max: Option<u32>,
    /// A script uploaded to and run on each instance as soon as that one accepts SSH; one that
    /// fails fails its instance.
    pub setup: Option<PathBuf>,
    /// Give up waiting after this long [default: 10 minutes].
    pub timeout: Option<Duration>,
    /// Enough: no [problem](crate::Created::problem) when at least this many got ready.
    pub min_ready: Option<u32>,
    /// Terminate the instances that did not get ready.
    pub drop_failed: bool,
}

impl CreateOptions {
    /// `count` instances, the other options at their defaults.
    pub fn new(count: u32) -> CreateOptions {
        CreateOptions {
            count,
            ..Default::default()
        }
    }

    fn args(&self) -> Vec<String> {
        let mut a = vec!["ec2-create".to_owned(), self.count.to_string()];
        push_opt(&mut a, "--role", self.role.as_deref());
        push_opt(&mut a, "--max", self.max.map(|m| m.to_string()).as_deref());
        push_opt(
            &mut a,
            "--setup",
            self.setup.as_deref().map(path_text).as_deref(),
        );
        push_opt(&mut a, "--timeout", self.timeout.map(secs).as_deref());
        push_opt(
            &mut a,
            "--min-ready",
            self.min_ready.map(|m| m.to_string()).as_deref(),
        );
        push_flag(&mut a, "--add", self.add);
        push_flag(&mut a, "--drop-failed", self.drop_failed);
        a
    }
}

/// Which hosts [`TestCase::exec_with`] runs on, and how (`ec2-exec-remote`'s options).
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    /// Only the instances of this role.
    pub role: Option<String>,
    /// Only these indexes (empty: all).
    pub indexes: Vec<u32>,
    /// How many hosts log in at once (the tools' `-f`) [default: 128].
    pub fanout: Option<u32>,
    /// Give up on a host whose command (connect included) runs longer than this; its remote
    /// process group is killed.
    pub timeout: Option<Duration>,
    /// Sent to the command's stdin on every host.
    pub stdin: Option<Vec<u8>>,
}

impl ExecOptions {
    fn args(&self, command: &str) -> Vec<String> {
        let mut a = vec!["ec2-exec-remote".to_owned()];
        push_opt(&mut a, "--role", self.role.as_deref());
        let indexes: Vec<String> = self.indexes.iter().map(u32::to_string).collect();
        push_opt(
            &mut a,
            "--select",
            (!indexes.is_empty()).then(|| indexes.join(",")).as_deref(),
        );
        push_opt(
            &mut a,
            "--fanout",
            self.fanout.map(|f| f.to_string()).as_deref(),
        );
        push_opt(
            &mut a,
            "--command-timeout",
            self.timeout.map(secs).as_deref(),
        );
        a.extend(["--".to_owned(), command.to_owned()]);
        a
    }
}

fn push_opt(args: &mut Vec<String>, flag: &str, value: Option<&str>) {
    if let Some(v) = value {
        args.extend([flag.to_owned(), v.to_owned()]);
    }
}

fn push_flag(args: &mut Vec<String>, flag: &str, on: bool) {
    if on {
        args.push(flag.to_owned());
    }
}

fn secs(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

fn path_text(p: &Path) -> String {
    p.display().to_string()
}

/// A tool's options from `args`, by the tool's own parser: a bad value is an input error
/// naming the option, as on the command line.
fn parse<C: clap::Parser>(args: Vec<String>) -> Result<C> {
    C::try_parse_from(args).map_err(|e| {
        let text = e.to_string();
        let first = text.lines().next().unwrap_or("bad option");
        Error::input(first.trim_start_matches("error: ").to_owned())
    })
}

impl TestCase {
    /// The test case in directory `dir` (it must exist), with its settings files and this
    /// process's environment. A malformed settings file is an error naming it.
    pub fn open(dir: impl AsRef<Path>) -> Result<TestCase> {
        Ok(TestCase {
            settings: Settings::load(Some(dir.as_ref()))?,
        })
    }

    /// Set a setting by its settings-file key (`instance_type`, `ami`, `region`, `ssh_user`,
    /// `ttl`, … — the table in the README and in every tool's `--help`), as a flag would: it
    /// beats the environment and the files. An unknown key is an error; a bad value is one
    /// when it is used.
    pub fn set(&mut self, key: &str, value: &str) -> Result<&mut TestCase> {
        self.settings.set(key, value)?;
        Ok(self)
    }

    /// The test-case directory.
    pub fn dir(&self) -> &Path {
        self.settings.dir()
    }

    /// The descriptors in the directory, by index (what the last operation left; nothing is
    /// asked of AWS). A descriptor that is not valid JSON is an error naming it.
    pub fn instances(&self) -> Result<Vec<Descriptor>> {
        let mut all = Store::new(self.settings.dir()).load_all()?;
        all.sort_by_key(|d| d.index);
        Ok(all)
    }

    /// Make the case hold `count` running instances that accept SSH (`ec2-create N`).
    pub fn create(&self, count: u32) -> Result<create::Created> {
        self.create_with(&CreateOptions::new(count))
    }

    /// [`TestCase::create`] with options. An error means nothing was done or the fleet could
    /// not be brought up at all (bad input, AWS or SSH infrastructure); instances that did not
    /// get ready are in the result's `failed`, with the reason in `problem`.
    pub fn create_with(&self, opts: &CreateOptions) -> Result<create::Created> {
        let cli: create::Cli = parse(opts.args())?;
        create::create(&self.settings, &cli)
    }

    /// Run `command` through the remote user's shell on every instance of the case, in
    /// parallel (`ec2-exec-remote CMD`); every host's exit code and output, by index. A host
    /// that failed is a result, not an error: an error means nothing could be run (no
    /// descriptors, a missing key, an address outside the allow list).
    pub fn exec(&self, command: &str) -> Result<Vec<HostRun>> {
        self.exec_with(command, &ExecOptions::default())
    }

    /// [`TestCase::exec`] on a selection, with options.
    pub fn exec_with(&self, command: &str, opts: &ExecOptions) -> Result<Vec<HostRun>> {
        let cli: exec_remote::Cli = parse(opts.args(command))?;
        exec_remote::capture(&self.settings, &cli, opts.stdin.clone())
    }

    /// Terminate every instance of the case and, after the last one, the key pair, security
    /// group, placement group and network the tools made for it (`ec2-killall`). Instances not
    /// confirmed terminated keep their descriptors and are listed in the result.
    pub fn killall(&self) -> Result<killall::Killed> {
        let cli: killall::Cli = parse(vec!["ec2-killall".to_owned()])?;
        killall::killall(&self.settings, &cli)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_become_the_tools_own_flags_and_pass_its_parser() {
        let o = CreateOptions {
            role: Some("slave".into()),
            max: Some(5),
            timeout: Some(Duration::from_secs(90)),
            drop_failed: true,
            ..CreateOptions::new(3)
        };
        assert_eq!(
            o.args().join(" "),
            "ec2-create 3 --role slave --max 5 --timeout 90000ms --drop-failed"
        );
        parse::<create::Cli>(o.args()).unwrap();
        let e = ExecOptions {
            indexes: vec![1, 3],
            fanout: Some(8),
            ..Default::default()
        };
        assert_eq!(
            e.args("-x; echo $HOME").join(" "),
            "ec2-exec-remote --select 1,3 --fanout 8 -- -x; echo $HOME"
        );
        parse::<exec_remote::Cli>(e.args("uptime")).unwrap();
    }

    #[test]
    fn a_bad_option_is_one_input_error_naming_it() {
        let e = parse::<create::Cli>(CreateOptions::new(0).args())
            .err()
            .unwrap();
        assert_eq!(e.code, crate::error::Code::Usage);
        assert!(
            e.message.contains("'<N>'") && !e.message.contains('\n'),
            "{e}"
        );
    }
}
