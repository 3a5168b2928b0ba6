//! The per-host sampler (`ec2-exec-remote --sample`): what it records, how it is started, how
//! its file is read back, and when a sample says the client — not the target — was the limit.
//! The writer (a POSIX shell + awk script, reading `/proc`: nothing to install on any Linux
//! AMI) and the reader of its file live together here, so the format is written once.
//!
//! Every interval the sampler writes one `cpu` line (machine CPU busy/user/system/iowait/steal
//! in %, memory, load, and the job's own process group: CPU in cores, threads, busy threads,
//! their demand and the busiest thread's) and one `net` line per interface (bytes and packets
//! per second). A thread's *demand* is the share of the interval it ran or waited to run
//! (`/proc/…/schedstat`: run + run-queue wait; its CPU ticks where the kernel has no
//! schedstat): a generator starved of CPU by its neighbours is as much the limit as one
//! pinned at a full core, and only demand sees both. It runs
//! in a session of its own, so it never counts itself, and ends when the job's process group
//! has no live process left (zombies do not count: an init that never reaps them would keep
//! it sampling forever). What does not belong here: intervals and merging (timeline.rs).

/// The first line of a sampler file starts with this.
pub const MAGIC: &str = "# ec2-tools sampler 1";

/// Where the sampler's files live on a host, relative to the remote home.
pub const REMOTE_DIR: &str = ".ec2-tools/samples";

/// The sampler itself: `sh sampler.sh PID FILE INTERVAL_S`.
const SCRIPT: &str = r###"pid=$1 out=$2 iv=${3:-1}
tck=$(getconf CLK_TCK 2>/dev/null) || tck=100
[ -n "$tck" ] || tck=100
ncpu=$(getconf _NPROCESSORS_ONLN 2>/dev/null) || ncpu=1
btime=$(awk '$1 == "btime" { print $2 }' /proc/stat 2>/dev/null)
mid=$(cat /etc/machine-id 2>/dev/null) || mid=none
kernel="${btime:-0}-${mid:-none}"
exec awk -v pid="$pid" -v iv="$iv" -v tck="$tck" -v ncpu="$ncpu" -v kernel="$kernel" -v out="$out" '
function now(   c, t) { c = "date +%s.%N"; c | getline t; close(c); if (t ~ /N/) { c = "date +%s"; c | getline t; close(c) }; return t + 0 }
function statf(f, a,   l) { if ((getline l < f) <= 0) { close(f); return 0 }; close(f); sub(/^.*\) /, "", l); return split(l, a, " ") }
function sched(f,   l, a) { if ((getline l < f) <= 0) { close(f); return -1 }; close(f); split(l, a, " "); return (a[1] + a[2]) / 1e9 }
function names(dir,   c, l) { c = "cd " dir " 2>/dev/null && echo [0-9]*"; l = ""; c | getline l; close(c); return l }
BEGIN {
  if (statf("/proc/" pid "/stat", a) < 3) exit 1
  pg = a[3]
  print "# ec2-tools sampler 1\tinterval=" iv "\ttck=" tck "\tncpu=" ncpu "\tpgid=" pg "\tkernel=" kernel > out
  print "#cpu\tt\tbusy_pct\tuser_pct\tsystem_pct\tiowait_pct\tsteal_pct\tmem_used_mb\tmem_total_mb\tload1\tjob_cpu\tjob_threads\tbusy_threads\tbusy_demand\tmax_thread_demand" > out
  print "#net\tt\tiface\trx_bytes_s\ttx_bytes_s\trx_packets_s\ttx_packets_s" > out
  fflush(out)
  first = 1
  while (1) {
    t = now()
    getline l < "/proc/stat"; close("/proc/stat")
    split(l, c, " ")
    tot = 0; for (i = 2; i <= 9; i++) tot += c[i]
    mt = 0; ma = -1; mf = 0
    while ((getline l < "/proc/meminfo") > 0) { split(l, m, " "); if (m[1] == "MemTotal:") mt = m[2]; else if (m[1] == "MemAvailable:") ma = m[2]; else if (m[1] == "MemFree:") mf = m[2] }
    close("/proc/meminfo"); if (ma < 0) ma = mf
    getline l < "/proc/loadavg"; close("/proc/loadavg"); split(l, la, " ")
    nn = 0
    while ((getline l < "/proc/net/dev") > 0) { if (l !~ /:/) continue; sub(/:/, " ", l); split(l, d, " "); nn++; ifn[nn] = d[1]; rb[d[1]] = d[2]; rp[d[1]] = d[3]; tb[d[1]] = d[10]; tp[d[1]] = d[11] }
    close("/proc/net/dev")
    jt = 0; nth = 0; members = 0
    np = split(names("/proc"), ps, " ")
    for (i = 1; i <= np; i++) {
      p = ps[i]
      if (statf("/proc/" p "/stat", a) < 18 || a[3] != pg || a[1] == "Z") continue
      members++
      jt += a[12] + a[13] + a[14] + a[15]
      nt = split(names("/proc/" p "/task"), ts, " ")
      for (j = 1; j <= nt; j++) { f = "/proc/" p "/task/" ts[j]; if (statf(f "/stat", b) < 13) continue; nth++; v = sched(f "/schedstat"); th[p "/" ts[j]] = v >= 0 ? v : (b[12] + b[13]) / tck }
    }
    if (!first) {
      dt = t - pt; if (dt <= 0) dt = iv
      dtot = tot - ptot; if (dtot <= 0) dtot = 1
      idle = c[5] - pc[5]; iow = c[6] - pc[6]
      busyth = 0; maxth = 0; bd = 0
      for (k in th) if (k in pth) { v = (th[k] - pth[k]) / dt; if (v > 0.05) { busyth++; bd += v }; if (v > maxth) maxth = v }
      jc = (jt - pjt) / (tck * dt); if (jc < 0) jc = 0
      printf "cpu\t%.3f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%s\t%.3f\t%d\t%d\t%.3f\t%.3f\n", t, 100 * (dtot - idle - iow) / dtot, 100 * (c[2] + c[3] - pc[2] - pc[3]) / dtot, 100 * (c[4] + c[7] + c[8] - pc[4] - pc[7] - pc[8]) / dtot, 100 * iow / dtot, 100 * (c[9] - pc[9]) / dtot, (mt - ma) / 1024, mt / 1024, la[1], jc, nth, busyth, bd, maxth > out
      for (i = 1; i <= nn; i++) { f = ifn[i]; if (f in prb) printf "net\t%.3f\t%s\t%.0f\t%.0f\t%.0f\t%.0f\n", t, f, (rb[f] - prb[f]) / dt, (tb[f] - ptb[f]) / dt, (rp[f] - prp[f]) / dt, (tp[f] - ptp[f]) / dt > out }
      fflush(out)
    }
    if (members == 0) exit 0
    first = 0; pt = t; ptot = tot; pjt = jt
    for (i = 2; i <= 9; i++) pc[i] = c[i]
    for (k in pth) delete pth[k]
    for (k in th) { pth[k] = th[k]; delete th[k] }
    for (f in rb) { prb[f] = rb[f]; ptb[f] = tb[f]; prp[f] = rp[f]; ptp[f] = tp[f] }
    system("sleep " iv)
  }
}'
"###;

/// Shell text put in front of a job's command (it travels with it, on stdin): writes the
/// sampler beside the job's files and starts it, detached, on the job's own process group.
/// The sample file is `~/.ec2-tools/samples/<job>-$CURRENT_AMI_ID.tsv`; `job` is a checked job
/// name (letters, digits, `._-`), the instance id comes from the environment. Without
/// `setsid` (the sampler would count itself) the job runs unsampled, with a note in its log.
pub fn start_prefix(job: &str, interval_s: f64) -> String {
    format!(
        "__ec2s_d=\"$HOME/{REMOTE_DIR}\"; mkdir -p \"$__ec2s_d\"; \
         cat > \"$__ec2s_d/.sampler.$$\" <<'__EC2_TOOLS_SAMPLER__'\n{SCRIPT}__EC2_TOOLS_SAMPLER__\n\
         mv -f \"$__ec2s_d/.sampler.$$\" \"$__ec2s_d/sampler.sh\"; \
         if command -v setsid >/dev/null 2>&1; then \
         setsid sh \"$__ec2s_d/sampler.sh\" \"$$\" \"$__ec2s_d/{job}-$CURRENT_AMI_ID.tsv\" {interval_s} </dev/null >/dev/null 2>&1 & \
         else echo 'ec2-tools: no setsid on this host: not sampled' >&2; fi; unset __ec2s_d\n"
    )
}

/// One `cpu` line: the machine and the job over one interval.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Cpu {
    /// When the interval ended, µs since the epoch (host clock until corrected).
    pub t_us: i64,
    /// Machine CPU not idle nor waiting on I/O, %.
    pub busy: f64,
    /// user + nice, %.
    pub user: f64,
    /// system + irq + softirq, %.
    pub system: f64,
    /// iowait, %.
    pub iowait: f64,
    /// Stolen by the hypervisor, %.
    pub steal: f64,
    /// Memory in use (total − available), MiB.
    pub mem_used_mb: f64,
    /// Memory, MiB.
    pub mem_total_mb: f64,
    /// 1-minute load average.
    pub load1: f64,
    /// The job's process group's CPU, in cores.
    pub job_cpu: f64,
    /// Its threads.
    pub job_threads: u32,
    /// Its threads whose demand (ran or waited to run) was over 5 % of the interval.
    pub busy_threads: u32,
    /// Their demand summed, in cores.
    pub busy_demand: f64,
    /// The busiest thread's demand, in cores.
    pub max_thread: f64,
}

/// One `net` line.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Net {
    /// When the interval ended, µs since the epoch.
    pub t_us: i64,
    /// The interface.
    pub iface: String,
    /// Received, bytes/s.
    pub rx_bytes_s: f64,
    /// Sent, bytes/s.
    pub tx_bytes_s: f64,
    /// Received, packets/s.
    pub rx_packets_s: f64,
    /// Sent, packets/s.
    pub tx_packets_s: f64,
}

/// A sampler file, read.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    /// The kernel's boot time and the machine id: two hosts with the same pair share a
    /// kernel (the local cloud, where each instance's boot id is emulated but `/etc` and the
    /// kernel are this machine's), so their machine-wide figures are not theirs alone.
    pub kernel: String,
    /// CPUs online.
    pub ncpu: u32,
    /// Seconds between samples.
    pub interval_s: f64,
    /// The `cpu` lines.
    pub cpu: Vec<Cpu>,
    /// The `net` lines.
    pub net: Vec<Net>,
}

/// True when `head` is the start of a sampler file.
pub fn is_samples(head: &[u8]) -> bool {
    head.starts_with(MAGIC.as_bytes())
}

/// Read a sampler file. A truncated last line (the job was killed mid-write) is dropped.
pub fn parse(text: &str) -> Result<Samples, String> {
    let mut lines = text.lines();
    let head = lines
        .next()
        .filter(|l| l.starts_with(MAGIC))
        .ok_or("not a sampler file")?;
    let mut s = Samples {
        ncpu: 1,
        interval_s: 1.0,
        ..Default::default()
    };
    for kv in head.split('\t').skip(1) {
        match kv.split_once('=') {
            Some(("kernel", v)) => s.kernel = v.to_owned(),
            Some(("ncpu", v)) => s.ncpu = v.parse().unwrap_or(1),
            Some(("interval", v)) => s.interval_s = v.parse().unwrap_or(1.0),
            _ => {}
        }
    }
    let all: Vec<&str> = lines.collect();
    let last = all.len();
    for (i, l) in all.into_iter().enumerate() {
        let f: Vec<&str> = l.split('\t').collect();
        let num = |j: usize| f.get(j).and_then(|v| v.parse::<f64>().ok());
        let parsed = match f[0] {
            "cpu" if f.len() == 15 => (|| {
                Some(Cpu {
                    t_us: (num(1)? * 1e6) as i64,
                    busy: num(2)?,
                    user: num(3)?,
                    system: num(4)?,
                    iowait: num(5)?,
                    steal: num(6)?,
                    mem_used_mb: num(7)?,
                    mem_total_mb: num(8)?,
                    load1: num(9)?,
                    job_cpu: num(10)?,
                    job_threads: num(11)? as u32,
                    busy_threads: num(12)? as u32,
                    busy_demand: num(13)?,
                    max_thread: num(14)?,
                })
            })()
            .map(|c| s.cpu.push(c)),
            "net" if f.len() == 7 => (|| {
                Some(Net {
                    t_us: (num(1)? * 1e6) as i64,
                    iface: f[2].to_owned(),
                    rx_bytes_s: num(3)?,
                    tx_bytes_s: num(4)?,
                    rx_packets_s: num(5)?,
                    tx_packets_s: num(6)?,
                })
            })()
            .map(|n| s.net.push(n)),
            _ if l.starts_with('#') || l.is_empty() => Some(()),
            _ => None,
        };
        if parsed.is_none() && i + 1 < last {
            return Err(format!("line {}: not a sampler line: {l:?}", i + 2));
        }
    }
    Ok(s)
}

/// Why an interval was client-bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Bound {
    /// The machine's CPU was ≥ 90 % busy.
    Cpu,
    /// ≥ 10 % of the CPU was stolen by the hypervisor.
    Steal,
    /// The job's busy threads each ran or waited to run ≥ 95 % of the time on average (a
    /// single-threaded generator pinned at one core on any number of cores, or starved).
    Job,
}

/// The thresholds.
pub const BUSY_PCT: f64 = 90.0;
/// See [`BUSY_PCT`].
pub const STEAL_PCT: f64 = 10.0;
/// See [`BUSY_PCT`].
pub const THREAD_CORE: f64 = 0.95;

/// Whether the sample says the client was the limit. `machine_wide` is false where the
/// machine's figures are not the host's own (hosts sharing a kernel): then only the job's own
/// CPU counts.
pub fn bound(c: &Cpu, machine_wide: bool) -> Option<Bound> {
    // Demand (ran + waited) sees a starved thread; CPU ticks (with reaped children) see a
    // generator whose work is in short-lived children: either at 95 % per busy thread.
    let per = THREAD_CORE * f64::from(c.busy_threads);
    if c.busy_threads >= 1 && (c.busy_demand >= per || c.job_cpu >= per) {
        return Some(Bound::Job);
    }
    if machine_wide && c.steal >= STEAL_PCT {
        return Some(Bound::Steal);
    }
    if machine_wide && c.busy >= BUSY_PCT {
        return Some(Bound::Cpu);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn cpu(busy: f64, steal: f64, job: f64, threads: u32) -> Cpu {
        Cpu {
            t_us: 0,
            busy,
            user: busy,
            system: 0.0,
            iowait: 0.0,
            steal,
            mem_used_mb: 1.0,
            mem_total_mb: 2.0,
            load1: 0.0,
            job_cpu: job,
            job_threads: threads,
            busy_threads: threads,
            busy_demand: job,
            max_thread: job,
        }
    }

    #[test]
    fn the_client_bound_rule_uses_the_jobs_threads_and_the_machine_only_when_it_is_its_own() {
        assert_eq!(bound(&cpu(20.0, 0.0, 0.99, 1), true), Some(Bound::Job));
        assert_eq!(bound(&cpu(20.0, 0.0, 1.2, 2), true), None);
        assert_eq!(bound(&cpu(20.0, 0.0, 3.9, 4), true), Some(Bound::Job));
        assert_eq!(bound(&cpu(95.0, 0.0, 0.2, 1), true), Some(Bound::Cpu));
        assert_eq!(bound(&cpu(95.0, 0.0, 0.2, 1), false), None);
        assert_eq!(bound(&cpu(50.0, 12.0, 0.2, 1), true), Some(Bound::Steal));
        assert_eq!(bound(&cpu(50.0, 0.0, 0.0, 0), true), None);
    }

    /// The real script under this machine's sh and awk, on a real /proc: a job burning one
    /// core is seen at ~1 core with one busy thread; a sleeping one at ~0.
    #[test]
    fn the_sampler_sees_a_busy_jobs_tree_and_an_idle_one() {
        let dir = tempfile::tempdir().unwrap();
        let run = |job: &str, body: &str| -> Samples {
            let prefix = start_prefix(job, 0.5);
            let script = format!("{prefix}{body}");
            let st = Command::new("setsid")
                .args(["sh", "-c", &script])
                .env("HOME", dir.path())
                .env("CURRENT_AMI_ID", "i-test")
                .status()
                .unwrap();
            assert!(st.success());
            let file = dir
                .path()
                .join(REMOTE_DIR)
                .join(format!("{job}-i-test.tsv"));
            // The sampler ends on its own once the job's group is empty.
            for _ in 0..50 {
                std::thread::sleep(std::time::Duration::from_millis(200));
                let t = std::fs::read_to_string(&file).unwrap_or_default();
                if t.lines().filter(|l| l.starts_with("cpu")).count() >= 4 {
                    return parse(&t).unwrap();
                }
            }
            panic!("no samples in {}", file.display());
        };
        let busy = run(
            "busy",
            // Forks are rare (one `date` per 200,000 iterations): waiting for a child is not
            // demand, and on a loaded machine frequent forks would keep it under 95 %.
            "end=$(($(date +%s) + 3)); while [ $(date +%s) -lt $end ]; do i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; done",
        );
        assert!(busy.kernel.len() > 2 && busy.ncpu >= 1);
        // Every interval but the last (in which the job ended) had the job running throughout.
        let mid = &busy.cpu[..busy.cpu.len() - 1];
        assert!(
            mid.iter().any(|c| c.job_cpu > 0.5 && c.busy_threads >= 1),
            "{:?}",
            busy.cpu
        );
        assert!(
            mid.iter().any(|c| bound(c, false) == Some(Bound::Job)),
            "{:?}",
            busy.cpu
        );
        assert!(!busy.net.is_empty());
        let idle = run("idle", "sleep 3");
        assert!(
            idle.cpu
                .iter()
                .all(|c| c.job_cpu < 0.2 && bound(c, false).is_none()),
            "{:?}",
            idle.cpu
        );
    }

    #[test]
    fn a_truncated_last_line_is_dropped_and_a_broken_one_named() {
        let t = format!("{MAGIC}\tinterval=1\tncpu=2\tkernel=b\ncpu\t1.0\t1\t1\t0\t0\t0\t10\t20\t0.1\t0.5\t2\t1\t0.5\t0.5\ncpu\t2.0\t1");
        let s = parse(&t).unwrap();
        assert_eq!((s.cpu.len(), s.ncpu, s.kernel.as_str()), (1, 2, "b"));
        let bad = format!("{MAGIC}\ncpu\tx\nnet\t1\teth0\t1\t1\t1\t1\n");
        assert!(parse(&bad).unwrap_err().starts_with("line 2"));
    }
}
