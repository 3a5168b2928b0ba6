//! The pure half of the SSM transport: which SendCommands a run makes (grouped by what
//! runs, 50 ids each or one to the case's tag, the data inline or fetched from S3), how the
//! polls back off, and what is said of output SSM cut. No calls here; run_command.rs sends.
//!
//! What does not belong here: the script itself (remote/ssm_script.rs), any AWS call.

use super::ssm::To;
use crate::case::descriptor::Descriptor;
use crate::remote::ssm_script::{host_work, script, shared, table, Data, MAX_SCRIPT};
use crate::remote::task::Task;
use std::time::Duration;

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
