//! Which transport runs a task on the hosts: SSH logins from here (remote/fanout.rs) or
//! Systems Manager's Run Command (aws/run_command.rs), as `transport` or the hosts'
//! descriptors say — decided here only, so every tool that runs commands or jobs has both.
//!
//! What does not belong here: either transport's machinery.

use crate::aws::ec2::TAG_CASE;
use crate::case::descriptor::Descriptor;
use crate::config::{SshConfig, Transport};
use crate::error::Result;
use crate::remote::fanout::{self, Judge, RunOpts};
use crate::remote::results::{Collector, Outcome};
use crate::remote::task::Task;
use std::collections::BTreeSet;

/// Run `task` on every host over the transport `cfg` and the hosts choose.
pub(crate) fn run_task(
    collector: &Collector,
    cfg: &SshConfig,
    hosts: &[Descriptor],
    task: &Task,
    opts: &RunOpts,
    judge: &Judge,
) -> Result<Vec<Outcome>> {
    match cfg.transport_for(hosts) {
        Transport::Ssh => fanout::run_task(collector, cfg, hosts, task, opts, judge),
        Transport::Ssm if matches!(task, Task::Put { .. } | Task::Get { .. }) => {
            crate::aws::ssm_files::copy(collector, cfg, hosts, task, opts, judge)
        }
        Transport::Ssm => crate::aws::run_command::run_task(
            collector,
            cfg,
            hosts,
            task,
            opts,
            judge,
            whole_case(task, hosts),
        ),
    }
}

/// The case's tag, when `hosts` are exactly the case's instances (a command's host list names
/// them all): then one SendCommand to the tag reaches them all.
fn whole_case(task: &Task, hosts: &[Descriptor]) -> Option<(String, String)> {
    let Task::Command { hosts: list, .. } = task else {
        return None;
    };
    let case: BTreeSet<&str> = list.lines().filter_map(|l| l.split(' ').nth(1)).collect();
    let selected: BTreeSet<&str> = hosts.iter().map(|d| d.id.as_str()).collect();
    (case == selected && !hosts.is_empty()).then(|| (TAG_CASE.to_owned(), hosts[0].case.clone()))
}
