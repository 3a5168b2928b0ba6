//! ec2-create: bring the case to N running instances (of a role) that accept SSH logins.
//!
//! `ec2-create N` means "ensure N", so re-running a test-case script never grows the fleet: it
//! reuses running instances, starts stopped ones, adopts instances tagged with the case whose
//! descriptors were never written, and launches only the missing (`--add` launches N more
//! regardless; `--max M` terminates extras above M, highest index first — wolphin's min/max).
//!
//! Order matters for the promise that nothing is ever forgotten: descriptors are written as
//! soon as RunInstances returns the ids, before any waiting, so a crash or Ctrl-C leaves every
//! launched instance findable; each launch also carries a deterministic ClientToken so AWS
//! itself returns the same instances when a crashed launch is retried.

use crate::config::{Config, LaunchConfig, SshConfig};
use crate::descriptor::{Descriptor, Store};
use crate::ec2::{self, Ec2};
use crate::error::{Code, Error, Result};
use crate::fleet::{self, CaseState};
use crate::output;
use crate::wait::{self, ReadyCheck};
use std::time::Duration;

const TOOL: &str = "ec2-create";

#[derive(Clone)]
pub struct CreateOptions {
    pub count: u32,
    pub max: Option<u32>,
    pub add: bool,
    pub timeout: Duration,
    pub role: Option<String>,
    /// Pause between DescribeInstances rounds.
    pub poll: Duration,
    /// `--setup SCRIPT`: uploaded and run on each instance the moment it is ready, while
    /// the others still boot.
    pub setup: Option<Vec<u8>>,
    /// Succeed when at least this many are ready (and set up).
    pub min_ready: Option<u32>,
    /// Terminate the instances that did not get ready (or failed setup).
    pub drop_failed: bool,
}

/// Runs the setup script from stdin with its own shebang, in a private temp file.
const SETUP: &str =
    "exec /bin/sh -c 'f=$(mktemp \"${TMPDIR:-/tmp}/ec2-tools-setup.XXXXXX\") || exit 97; \
cat > \"$f\"; chmod 700 \"$f\"; \"$f\" </dev/null; rc=$?; rm -f \"$f\"; exit $rc'";

/// The provision-while-booting hook: seed 001's provider → queue → configurer pipeline, with
/// the wait loop as provider and each probe thread as a configurer.
fn setup_hook(script: Vec<u8>) -> wait::ReadyHook {
    std::sync::Arc::new(move |d: &Descriptor, conn: &crate::ssh::Conn| {
        let label = d.address.clone().unwrap_or_else(|| d.id.clone());
        // Setup output goes to stderr: ec2-create's stdout stays a list of instances.
        let mut out = crate::output::LinePrefixer::new(&label, crate::output::Dest::Stderr);
        let mut err = crate::output::LinePrefixer::new(&label, crate::output::Dest::Stderr);
        let r = conn.exec(
            SETUP,
            Some(&script),
            None,
            &crate::tool::interrupted,
            &mut |s, b| match s {
                crate::ssh::Stream::Stdout => out.push(b),
                crate::ssh::Stream::Stderr => err.push(b),
            },
        );
        match r {
            Ok(i) if i.code == 0 => Ok(()),
            Ok(i) => Err(format!("setup exited {}", i.code)),
            Err(e) => Err(format!("setup: {e}")),
        }
    })
}

/// Reconcile, launch, wait; print `<id> <address>` for every instance of the role.
pub fn run(
    cfg: &Config,
    launch: &LaunchConfig,
    ssh_cfg: &SshConfig,
    opts: &CreateOptions,
) -> Result<Code> {
    if let Some(max) = opts.max {
        if max < opts.count {
            return Err(Error::input(format!(
                "--max {max} is below N = {}",
                opts.count
            )));
        }
    }
    let store = Store::new(&cfg.dir);
    let _lock = store.lock()?;
    let existing = store.load_all()?; // a bad descriptor stops us before anything is launched
    let rt = crate::runtime()?;
    rt.block_on(async {
        let ec2 = ec2::connect(cfg.region.as_deref()).await?;
        let members = reconcile(&ec2, cfg, launch, ssh_cfg, opts, &store, existing).await?;
        let waited = wait::ready(
            &ec2,
            ssh_cfg,
            &store,
            members,
            opts.timeout,
            opts.poll,
            ReadyCheck {
                hook: opts.setup.clone().map(setup_hook),
                ..Default::default()
            },
        )
        .await?;
        waited.print_ready();
        let what = if opts.setup.is_some() {
            "get ready and set up"
        } else {
            "accept SSH"
        };
        if opts.drop_failed && !waited.failed.is_empty() && !waited.interrupted {
            let failed: Vec<Descriptor> = waited.failed.iter().map(|(d, _)| d.clone()).collect();
            fleet::terminate_and_forget(&ec2, &store, &failed).await?;
            let ids: Vec<String> = failed.iter().map(|d| d.id.clone()).collect();
            output::note(
                TOOL,
                format!("--drop-failed: terminated {}", ids.join(", ")),
            );
        }
        let enough = opts
            .min_ready
            .is_some_and(|m| waited.ready.len() as u32 >= m);
        match waited.error(what, opts.timeout) {
            None => Ok(Code::Ok),
            Some(e) if enough && e.code != Code::Interrupted => {
                output::note(
                    TOOL,
                    format!(
                        "{e}; continuing with {} ready (--min-ready {})",
                        waited.ready.len(),
                        opts.min_ready.unwrap_or(0)
                    ),
                );
                Ok(Code::Ok)
            }
            Some(e) => Err(e),
        }
    })
}

fn same_role(d: &Descriptor, role: Option<&str>) -> bool {
    d.role() == role
}

/// Make the case hold what was asked; returns the role's members to wait for, by index.
async fn reconcile(
    ec2: &Ec2,
    cfg: &Config,
    launch: &LaunchConfig,
    ssh_cfg: &SshConfig,
    opts: &CreateOptions,
    store: &Store,
    existing: Vec<Descriptor>,
) -> Result<Vec<Descriptor>> {
    let role = opts.role.as_deref();
    let mut all = fleet::refresh(ec2, ssh_cfg, store, existing, TOOL).await?;
    let adopted = fleet::adopt(ec2, cfg, ssh_cfg, store, &all).await?;
    all.extend(adopted);
    all.sort_by_key(|d| d.index);

    let mut members: Vec<Descriptor> = all.iter().filter(|d| same_role(d, role)).cloned().collect();
    let missing = if opts.add {
        opts.count
    } else {
        opts.count.saturating_sub(members.len() as u32)
    };

    // Above --max: terminate the extras, highest index first.
    if let Some(max) = opts.max {
        if members.len() as u32 > max {
            let extras: Vec<Descriptor> = members.split_off(max as usize);
            fleet::terminate_and_forget(ec2, store, &extras).await?;
            let ids: Vec<String> = extras.iter().map(|d| d.id.clone()).collect();
            output::note(
                TOOL,
                format!(
                    "terminated {} instances above --max {max}: {}",
                    ids.len(),
                    ids.join(", ")
                ),
            );
        }
    }

    // Stopped (or stopping) members: start them.
    let mut to_start: Vec<Descriptor> = members
        .iter()
        .filter(|d| matches!(d.state.as_deref(), Some("stopped" | "stopping")))
        .cloned()
        .collect();
    if !to_start.is_empty() {
        let stopping = to_start
            .iter()
            .any(|d| d.state.as_deref() == Some("stopping"));
        if stopping {
            let late = wait::state(
                ec2,
                ssh_cfg,
                store,
                &mut to_start,
                &["stopped"],
                opts.timeout,
                opts.poll,
            )
            .await?;
            if !late.is_empty() {
                return Err(Error::infra(format!(
                    "instances still stopping: {}",
                    late.join(", ")
                )));
            }
        }
        let ids: Vec<String> = to_start.iter().map(|d| d.id.clone()).collect();
        ec2.start(&ids).await?;
        output::note(
            TOOL,
            format!(
                "starting {} stopped instances: {}",
                ids.len(),
                ids.join(", ")
            ),
        );
        for m in members.iter_mut().filter(|m| ids.contains(&m.id)) {
            m.state = Some("pending".into());
        }
    }

    if missing > 0 {
        launch.ami()?;
        let mut state = CaseState::load(store)?;
        state.save(store)?; // the nonce must be on disk before its token is used
        let access = fleet::ensure_access(ec2, cfg, launch, ssh_cfg, store, &mut state).await?;
        let first = all.iter().map(|d| d.index).max().unwrap_or(0) + 1;
        let launched = fleet::launch(
            ec2, cfg, launch, ssh_cfg, store, &mut state, &access, first, missing, role,
        )
        .await?;
        members.extend(launched);
    } else if !opts.add {
        output::note(
            TOOL,
            format!(
                "the case already has {} instances{}: launching none",
                members.len(),
                role.map(|r| format!(" of role {r}")).unwrap_or_default()
            ),
        );
    }
    members.sort_by_key(|d| d.index);
    Ok(members)
}
