//! Synchronized start (`ec2-exec-remote --at TIME`): every host starts the command at the same
//! wall-clock instant, as seed 001 triggered its load with cron at a set time.
//!
//! Each host's clock is measured first (its `date` against the midpoint of our request and
//! reply); a host off by more than `--max-skew` stops the run before anything starts. The
//! instant each host waits for is corrected by its own offset, so even skewed clocks start
//! together (to within the measurement's round-trip).

use crate::case::clocks::{self, Clock};
use crate::case::descriptor::Descriptor;
use crate::config::{parse_duration, SshConfig};
use crate::error::{Error, Result};
use crate::output;
use crate::remote::fanout::{on_connections, resolve_targets};
use crate::remote::ssh::{Kind, SshError};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `+30s`, `HH:MM[:SS]` (local time, the next such time), or RFC 3339.
pub(crate) fn parse_at(s: &str) -> std::result::Result<SystemTime, String> {
    let now = SystemTime::now();
    let t = parse_instant(s, now)?;
    if t + Duration::from_secs(1) < now {
        return Err(format!("{s:?} is in the past"));
    }
    if t > now + MAX_AHEAD {
        return Err(format!(
            "{s:?} is more than {} away",
            humantime::format_duration(MAX_AHEAD)
        ));
    }
    Ok(t)
}

/// How far ahead `--at` may be: a start planned further out is surely a typo (and its hosts'
/// clocks will have drifted by then).
const MAX_AHEAD: Duration = Duration::from_secs(24 * 3600);

fn parse_instant(s: &str, now: SystemTime) -> std::result::Result<SystemTime, String> {
    if let Some(rel) = s.strip_prefix('+') {
        return parse_duration(rel).map(|d| now + d);
    }
    if let Ok(t) = humantime::parse_rfc3339_weak(s) {
        if s.contains('T') || s.contains(' ') {
            // An RFC 3339 time without a zone is taken as UTC by humantime; with one, exact.
            return humantime::parse_rfc3339(s)
                .or(Ok::<_, humantime::TimestampError>(t))
                .map_err(|e| e.to_string());
        }
    }
    let parts: Vec<&str> = s.split(':').collect();
    if (2..=3).contains(&parts.len()) {
        let nums: std::result::Result<Vec<i32>, _> =
            parts.iter().map(|p| p.parse::<i32>()).collect();
        if let Ok(n) = nums {
            let (h, m, sec) = (n[0], n[1], *n.get(2).unwrap_or(&0));
            if (0..24).contains(&h) && (0..60).contains(&m) && (0..61).contains(&sec) {
                let (t, tomorrow) = next_local(h, m, sec);
                if tomorrow {
                    output::note(format!(
                        "--at {s}: that time has passed today; starting tomorrow at {s} (in {})",
                        humantime::format_duration(Duration::from_secs(
                            t.duration_since(now).unwrap_or_default().as_secs()
                        ))
                    ));
                }
                return Ok(t);
            }
        }
    }
    Err(format!(
        "{s:?}: expected +30s, HH:MM[:SS] or an RFC 3339 time"
    ))
}

/// The next local wall-clock time h:m:s (today, else tomorrow).
/// True when it is tomorrow's (today's has passed).
fn next_local(h: i32, m: i32, s: i32) -> (SystemTime, bool) {
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() as libc::time_t;
    // SAFETY: plain libc time conversions on stack values.
    let mut tomorrow = false;
    let t = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        libc::localtime_r(&secs, &mut tm);
        tm.tm_hour = h;
        tm.tm_min = m;
        tm.tm_sec = s;
        tm.tm_isdst = -1;
        let mut t = libc::mktime(&mut tm);
        if t <= secs {
            tomorrow = true;
            tm.tm_mday += 1;
            tm.tm_isdst = -1;
            t = libc::mktime(&mut tm);
        }
        t
    };
    (UNIX_EPOCH + Duration::from_secs(t.max(0) as u64), tomorrow)
}

fn epoch(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// Measure every host's clock (its `date` against the midpoint of our request and reply):
/// `(id, address, offset s)` per host, host − here. Saved in the case (`clocks.json`) when
/// `state_dir` is given, so `ec2-report` can correct the hosts' timestamps later.
pub(crate) fn measure(
    cfg: &SshConfig,
    hosts: &[Descriptor],
    fanout: usize,
    state_dir: Option<&std::path::Path>,
) -> Result<Vec<(String, String, f64)>> {
    resolve_targets(cfg, hosts)?; // an address outside the allow list refuses the whole run
    let measured = on_connections(cfg, hosts, fanout, |d, conn| {
        let sent = SystemTime::now();
        let (_, out, _) = conn.run_capture("date +%s.%N", None)?;
        let back = SystemTime::now();
        let remote: f64 = String::from_utf8_lossy(&out)
            .trim()
            .parse()
            .map_err(|_| SshError::new(Kind::Session, "cannot read the host's clock"))?;
        let mid = (epoch(sent) + epoch(back)) / 2.0;
        let rtt = epoch(back) - epoch(sent);
        let address = conn.target.address.clone();
        Ok((d.id.clone(), address, remote - mid, rtt))
    });
    let mut offsets = Vec::new();
    let mut errors = Vec::new();
    for (r, d) in measured.into_iter().zip(hosts) {
        match r {
            Ok(v) => offsets.push(v),
            Err(e) => errors.push(format!("{}: {}", d.id, e.message)),
        }
    }
    if let Some(dir) = state_dir {
        let now = epoch(SystemTime::now());
        let clocks: Vec<(String, Clock)> = offsets
            .iter()
            .map(|(id, _, off, rtt)| {
                (
                    id.clone(),
                    Clock {
                        offset_s: *off,
                        rtt_s: *rtt,
                        at: now,
                    },
                )
            })
            .collect();
        if let Err(e) = clocks::save(dir, &clocks) {
            output::note(format!("clock offsets not kept: {}", e.message));
        }
    }
    if !errors.is_empty() {
        return Err(Error::infra(format!(
            "could not read every host's clock: {}",
            errors.join("; ")
        )));
    }
    Ok(offsets
        .into_iter()
        .map(|(id, a, off, _)| (id, a, off))
        .collect())
}

/// Measure every host's clock; refuse if one is off by more than `max_skew`; return the
/// instant (on each host's own clock) at which it must start.
pub(crate) fn starts(
    cfg: &SshConfig,
    hosts: &[Descriptor],
    at: SystemTime,
    max_skew: Duration,
    fanout: usize,
    state_dir: Option<&std::path::Path>,
) -> Result<BTreeMap<String, f64>> {
    if at <= SystemTime::now() {
        return Err(Error::input("--at: that time has passed"));
    }
    if cfg.transport_for(hosts) == crate::config::Transport::Ssm {
        // Run Command has no round trip short enough to measure a clock by: each host waits
        // by its own clock, which on EC2 the Amazon Time Sync Service keeps.
        output::note(format!(
            "--at over SSM: {} hosts start at {} by their own clocks (not measured)",
            hosts.len(),
            humantime::format_rfc3339_millis(at)
        ));
        let t = epoch(at);
        return Ok(hosts.iter().map(|d| (d.id.clone(), t)).collect());
    }
    let offsets = measure(cfg, hosts, fanout, state_dir)
        .map_err(|e| Error::infra(format!("--at: {}", e.message)))?;
    let worst = offsets
        .iter()
        .max_by(|a, b| a.2.abs().total_cmp(&b.2.abs()))
        .cloned();
    if let Some((id, addr, off)) = &worst {
        output::note(format!(
            "clock offsets from this machine: {} hosts, worst {addr} ({id}) {off:+.3}s; starting all at {}",
            offsets.len(),
            humantime::format_rfc3339_millis(at)
        ));
        if off.abs() > max_skew.as_secs_f64() {
            let bad: Vec<String> = offsets
                .iter()
                .filter(|o| o.2.abs() > max_skew.as_secs_f64())
                .map(|(id, a, o)| format!("{a} ({id}) {o:+.3}s"))
                .collect();
            return Err(Error::infra(format!(
                "--at: {} hosts are off by more than --max-skew {}: {}",
                bad.len(),
                humantime::format_duration(max_skew),
                bad.join(", ")
            )));
        }
    }
    let t = epoch(at);
    Ok(offsets
        .into_iter()
        .map(|(id, _, off)| (id, t + off))
        .collect())
}

/// Shell text that sleeps until the host's clock reads `t` (seconds since the epoch), put in
/// front of the command (it travels on stdin with it).
pub(crate) fn wait_until_prefix(t: f64) -> String {
    format!(
        "__ec2_tools_d=$(awk -v t={t:.6} -v n=\"$(date +%s.%N)\" 'BEGIN {{ d = t - n; if (d > 0) printf \"%.6f\", d; else print 0 }}'); \
         [ \"$__ec2_tools_d\" = 0 ] || sleep \"$__ec2_tools_d\"; unset __ec2_tools_d\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_accepts_relative_clock_and_rfc3339_times() {
        let now = SystemTime::now();
        let t = parse_at("+30s").unwrap();
        assert!(t.duration_since(now).unwrap() >= Duration::from_secs(29));
        let soon = humantime::format_rfc3339_seconds(now + Duration::from_secs(3600)).to_string();
        let t = parse_at(&soon).unwrap();
        assert_eq!(
            epoch(t) as u64,
            now.duration_since(UNIX_EPOCH).unwrap().as_secs() + 3600
        );
        assert!(parse_at("2030-01-02T03:04:05Z")
            .unwrap_err()
            .contains("away"));
        assert!(parse_at("2001-01-02T03:04:05Z")
            .unwrap_err()
            .contains("past"));
        let t = parse_at("12:30").unwrap();
        let ahead = t.duration_since(now).unwrap();
        assert!(ahead <= Duration::from_secs(86_400 + 3600));
        assert!(parse_at("25:00").is_err());
        assert!(parse_at("soon").is_err());
    }
}
