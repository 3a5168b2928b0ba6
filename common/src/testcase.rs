//! The library's face: a test case driven from another Rust program instead of a shell
//! script — the same work as the tools, with the results handed back as data.
//!
//! A [`TestCase`] is a test-case directory and its settings (the same layers as the tools':
//! `ec2-tools.json` here and in the parents, the environment, defaults), plus what the program
//! [sets](TestCase::set), which ranks as a flag. Each operation runs the tool's own work
//! (cmd/) on the same resolved option types its command line becomes (nothing is turned back
//! into argv), so defaults, checks and exit-code meanings are written once; what the tool would print on stdout comes back instead. Notes
//! (what was reused, what was terminated) still go to stderr, as `ec2-tools: …` lines.
//!
//! What does not belong here: any behaviour of its own. An operation a tool lacks is added to
//! the tool first.

use crate::case::descriptor::Descriptor;
use crate::case::store::Store;
use crate::cli::{HostArgs, SelectArgs};
use crate::cmd::exec_remote::RemoteJob;
use crate::cmd::{create, exec_remote, killall};
use crate::config::{OutputConfig, OutputMode};
use crate::error::{Error, Result};
use crate::remote::results::HostRun;
use crate::settings::Settings;
use std::path::Path;
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

pub use crate::cmd::create::CreateOptions;

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
    /// The hosts chosen and the job, as ec2-exec-remote's own work takes them; a bad value is
    /// an input error naming the option, found before any host is contacted.
    fn job(&self, command: &str) -> Result<(HostArgs, RemoteJob)> {
        let fanout = self.fanout.unwrap_or(crate::cli::DEFAULT_FANOUT);
        if !(1..=crate::cli::MAX_FANOUT).contains(&fanout) {
            return Err(Error::input(format!(
                "fanout: {fanout} is not in 1..={}",
                crate::cli::MAX_FANOUT
            )));
        }
        let hosts = HostArgs {
            select: SelectArgs {
                from: None,
                select: (!self.indexes.is_empty()).then(|| self.indexes.iter().copied().collect()),
                role: self.role.clone(),
            },
            ..Default::default()
        };
        let job = RemoteJob {
            command: command.to_owned(),
            stdin: self.stdin.clone(),
            fanout: fanout as usize,
            timeout: self.timeout,
            at: None,
            max_skew: Duration::from_secs(1),
            results: OutputConfig {
                mode: OutputMode::Capture,
                ..Default::default()
            },
            state_dir: None,
            case_hosts: String::new(),
        };
        Ok((hosts, job))
    }
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
        let (case, launch, ssh) = Default::default();
        let job = create::resolve(&self.settings, &case, &launch, &ssh, opts.clone())?;
        create::create(job)
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
        let (hosts, job) = opts.job(command)?;
        exec_remote::capture(&self.settings, &hosts, job)
    }

    /// Terminate every instance of the case and, after the last one, the key pair, security
    /// group, placement group and network the tools made for it (`ec2-killall`). Instances not
    /// confirmed terminated keep their descriptors and are listed in the result.
    pub fn killall(&self) -> Result<killall::Killed> {
        killall::killall(&self.settings, &killall::Cli::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_the_works_own_types_and_checked_before_anything() {
        let e = ExecOptions {
            indexes: vec![1, 3],
            fanout: Some(8),
            timeout: Some(Duration::from_secs(90)),
            ..Default::default()
        };
        let (hosts, job) = e.job("-x; echo $HOME").unwrap();
        assert_eq!(job.command, "-x; echo $HOME");
        assert_eq!(
            (job.fanout, job.timeout),
            (8, Some(Duration::from_secs(90)))
        );
        let sel = hosts.select.resolve();
        assert_eq!(sel.indexes, Some([1, 3].into_iter().collect()));
        assert_eq!(sel.role, None);
        let all = ExecOptions::default().job("true").unwrap();
        assert_eq!(all.1.fanout, crate::cli::DEFAULT_FANOUT as usize);
        assert!(all.0.select.resolve().indexes.is_none());
    }

    #[test]
    fn a_bad_option_is_one_input_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let case = TestCase::open(dir.path()).unwrap();
        let fanout0 = ExecOptions {
            fanout: Some(0),
            ..Default::default()
        };
        let max_below = CreateOptions {
            max: Some(2),
            ..CreateOptions::new(3)
        };
        for (e, names) in [
            (case.create_with(&CreateOptions::new(0)).err(), "N: 0"),
            (case.create_with(&max_below).err(), "--max 2"),
            (case.exec_with("true", &fanout0).err(), "fanout: 0"),
        ] {
            let e = e.expect("an error");
            assert_eq!(e.code, crate::error::Code::Usage, "{e}");
            assert!(
                e.message.starts_with(names) && !e.message.contains('\n'),
                "{e}"
            );
        }
        // Found before anything: not even the case's state directory is made.
        assert!(!dir.path().join(".ec2-tools").exists());
    }
}
