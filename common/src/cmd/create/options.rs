//! What ec2-create was asked, as one options type: from its command line (`Cli::options`) or
//! from a library caller alike, checked before anything (N in range, roles each named once,
//! `--max` not below N), and turned into what each role wants. What does not belong here:
//! deciding what to do about it (plan.rs), doing it (mod.rs).

use super::plan::Want;
use super::Cli;
use crate::error::{Error, Result};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

/// How ec2-create brings the case to its size: the command line's options, resolved, and
/// the library's [`crate::TestCase::create_with`] options alike (one type: nothing is turned
/// back into argv).
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
    /// More roles brought up in the same run, each with its count (`count` and `role` are
    /// the first): one boot wait for all. Not with `max`.
    pub more_roles: Vec<(String, u32)>,
}

/// The wait's bound when none is given.
pub(super) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// The most instances one `ec2-create` brings up.
pub(super) const MAX_COUNT: u32 = 10_000;

impl CreateOptions {
    /// `count` instances, the other options at their defaults.
    pub fn new(count: u32) -> CreateOptions {
        CreateOptions {
            count,
            ..Default::default()
        }
    }

    /// Bad input, found before anything is launched: one line naming the option.
    pub(super) fn check(&self) -> Result<()> {
        if !(1..=MAX_COUNT).contains(&self.count) {
            return Err(Error::input(format!(
                "N: {} is not in 1..={MAX_COUNT}",
                self.count
            )));
        }
        if !self.more_roles.is_empty() {
            check_roles(self)?;
        }
        match self.max {
            Some(max) if max < self.count => Err(Error::input(format!(
                "--max {max} is below N = {}",
                self.count
            ))),
            _ => Ok(()),
        }
    }

    /// What was asked of each role, in order.
    pub(super) fn wants(&self) -> Vec<Want> {
        let first = Want {
            count: self.count,
            role: self.role.clone(),
            add: self.add,
            max: self.max,
            min_ready: self.min_ready,
        };
        let more = self.more_roles.iter().map(|(role, count)| Want {
            count: *count,
            role: Some(role.clone()),
            ..first.clone()
        });
        std::iter::once(first.clone()).chain(more).collect()
    }
}

/// Several roles at once: each named once, each N in range, all of them within the bound,
/// and no `--max` (which role would it trim?).
fn check_roles(o: &CreateOptions) -> Result<()> {
    let Some(first) = &o.role else {
        return Err(Error::input("several N: each needs its --role"));
    };
    let mut seen = BTreeSet::from([first.as_str()]);
    let mut total = u64::from(o.count);
    for (role, count) in &o.more_roles {
        if !seen.insert(role) {
            return Err(Error::input(format!("--role {role}: given twice")));
        }
        if !(1..=MAX_COUNT).contains(count) {
            return Err(Error::input(format!(
                "{role}={count}: not in 1..={MAX_COUNT}"
            )));
        }
        total += u64::from(*count);
    }
    if total > u64::from(MAX_COUNT) {
        return Err(Error::input(format!(
            "{total} instances in all: at most {MAX_COUNT} in one ec2-create"
        )));
    }
    if o.max.is_some() {
        return Err(Error::input("--max: one role at a time"));
    }
    Ok(())
}

/// `--roles`: each role with its N, in order.
#[derive(Debug, Clone)]
pub(super) struct Roles(pub(super) Vec<(String, u32)>);

/// `server=1,client=3`.
pub(super) fn parse_roles(s: &str) -> std::result::Result<Roles, String> {
    s.split(',')
        .map(|part| {
            let (role, n) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?}: expected ROLE=N"))?;
            let n: u32 = n
                .trim()
                .parse()
                .map_err(|_| format!("{part:?}: N is not a positive integer"))?;
            if role.trim().is_empty() || n == 0 {
                return Err(format!("{part:?}: expected ROLE=N with N ≥ 1"));
            }
            Ok((role.trim().to_owned(), n))
        })
        .collect::<std::result::Result<_, _>>()
        .map(Roles)
}

impl Cli {
    /// What was asked, as the options type the work takes.
    pub(super) fn options(&self) -> Result<CreateOptions> {
        let mut groups: Vec<(Option<String>, u32)> = match &self.roles {
            Some(r) => r.0.iter().map(|(role, n)| (Some(role.clone()), *n)).collect(),
            None if self.count.len() > 1 && self.role.len() != self.count.len() => {
                return Err(Error::input(format!(
                    "{} N given with {} --role: give each N its --role (`1 --role server 3 --role client`)",
                    self.count.len(),
                    self.role.len()
                )))
            }
            None if self.count.len() == 1 && self.role.len() > 1 => {
                return Err(Error::input("several --role: give each its N"));
            }
            None => self
                .count
                .iter()
                .enumerate()
                .map(|(i, n)| (self.role.get(i).cloned(), *n))
                .collect(),
        };
        let (role, count) = groups.remove(0);
        let more_roles = groups
            .into_iter()
            .map(|(r, n)| (r.unwrap_or_default(), n))
            .collect();
        Ok(CreateOptions {
            count,
            role,
            more_roles,
            add: self.add,
            max: self.max,
            setup: self.setup.clone(),
            timeout: Some(self.timeout),
            min_ready: self.min_ready,
            drop_failed: self.drop_failed,
        })
    }
}
