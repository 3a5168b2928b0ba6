//! What a case needs before its first launch and gives back after its last instance: an EC2
//! key pair and a security group of its own, and the API calls that make and delete them.
//!
//! Use what the configuration names; otherwise make (once per case) an ed25519 key pair whose
//! private half stays in `.ec2-tools/` (mode 0600) and a security group opening TCP 22 (and
//! `--open` ports) only to the SSH CIDR — never 0.0.0.0/0 unless asked — and all traffic
//! between the case's own instances (a load test's clients reach its servers; on AWS nothing
//! else would let them). Both are named `ec2-tools-<case>-<nonce>`, tagged with the case and
//! owner at creation (so a sweep finds them even when `.ec2-tools/` is lost) and remembered in
//! the case state. What does not belong here: launching, instances; the EC2 calls themselves
//! (calls.rs).

mod calls;

use super::ec2::{owner, Ec2, TAG_CASE, TAG_OWNER};
use crate::case::store::{case_key_path, CaseState, Store};
use crate::config::{AddressMode, LaunchConfig, SshConfig};
use crate::error::{Error, Result, ResultExt};
use crate::output;

/// The key pair and security groups a launch uses.
#[derive(Debug, Clone, Default)]
pub struct Access {
    pub key_name: Option<String>,
    pub security_groups: Vec<String>,
    pub placement_group: Option<String>,
    /// The instance profile the case made for SSM (`--transport ssm` without `--iam-profile`).
    pub iam_profile: Option<String>,
}

/// The case's security group: the configuration's, one made earlier, or one to make.
enum Group {
    Given,
    Found(String, Option<ipnet::IpNet>),
    /// `cidr`: who may reach SSH and `--open` (none over SSM without `--open`); `ssm`: no
    /// port 22 and no rule between the case's instances — no ingress but what `--open` asks.
    Make {
        vpc: String,
        cidr: Option<ipnet::IpNet>,
        ssm: bool,
    },
}

/// Use what the configuration names; otherwise make (once per case) an ed25519 key pair whose
/// private half stays in `.ec2-tools/` (mode 0600) and a security group opening TCP 22 only to
/// the SSH CIDR.
///
/// Everything that can be found wrong (no default VPC, an unknown subnet, no way to tell who
/// should reach SSH) is found before anything is made.
pub async fn ensure_access(
    ec2: &Ec2,
    case: &str,
    launch: &LaunchConfig,
    ssh_cfg: &SshConfig,
    store: &Store,
    state: &mut CaseState,
) -> Result<Access> {
    let name = state.resource_name(case);
    let mut tags = vec![
        (TAG_CASE.to_owned(), case.to_owned()),
        (TAG_OWNER.to_owned(), owner()),
    ];
    tags.extend(launch.instance.tags.iter().cloned());
    let made = Made {
        ec2,
        name: &name,
        tags: &tags,
        store,
    };
    // Over SSM nothing logs in: no key pair, no port open, an instance profile instead.
    let ssm = ssh_cfg.transport == Some(crate::config::Transport::Ssm);
    // Checks first, reads only: the subnet (or default VPC) and who may reach port 22.
    let group = group_to_use(ec2, &name, launch, ssh_cfg).await?;
    let key_name = match ssm {
        true => launch.key_name.clone(),
        false => Some(made.key_pair(launch, ssh_cfg, state).await?),
    };
    let iam_profile = match (ssm, &launch.instance.iam_profile) {
        (true, None) => Some(made.ssm_profile(state).await?),
        _ => None,
    };
    let security_groups = made.security_group(group, launch, state).await?;
    let placement_group = match launch.placement {
        None => None,
        Some(p) => {
            if ec2.ensure_placement_group(&name, p, &tags).await? {
                output::note(format!("created {} placement group {name}", p.as_str()));
            }
            state.placement_group = Some(name.clone());
            state.save(store)?;
            Some(name.clone())
        }
    };
    Ok(Access {
        key_name,
        security_groups,
        placement_group,
        iam_profile,
    })
}

/// The security group to launch in: the ones given, the case's found in the VPC, or one to
/// make; with who may reach port 22 (found before anything is made).
async fn group_to_use(
    ec2: &Ec2,
    name: &str,
    launch: &LaunchConfig,
    ssh_cfg: &SshConfig,
) -> Result<Group> {
    let need_group = launch.security_groups.is_empty();
    let vpc = if need_group || !launch.subnets.is_empty() {
        Some(ec2.vpc_of(&launch.subnets).await?)
    } else {
        None
    };
    let ssm = ssh_cfg.transport == Some(crate::config::Transport::Ssm);
    let cidr = |vpc_cidr: Option<&str>| match ssm && launch.open_ports.is_empty() {
        true => Ok(None),
        false => ssh_cidr(launch, ssh_cfg, vpc_cidr).map(Some),
    };
    Ok(match &vpc {
        Some((vpc, vpc_cidr)) if need_group => match ec2.find_group(name, vpc).await? {
            Some(id) if launch.open_ports.is_empty() => Group::Found(id, None),
            Some(id) => Group::Found(id, cidr(vpc_cidr.as_deref())?),
            None => Group::Make {
                vpc: vpc.clone(),
                cidr: cidr(vpc_cidr.as_deref())?,
                ssm,
            },
        },
        _ => Group::Given,
    })
}

/// What [`ensure_access`] makes for the case: named and tagged alike, each recorded in the
/// case state the moment it exists.
struct Made<'a> {
    ec2: &'a Ec2,
    name: &'a str,
    tags: &'a [(String, String)],
    store: &'a Store,
}

impl Made<'_> {
    /// The key pair: the one named, else the public half of the identity the tools log in
    /// with (so the instances accept it), else the case's own key, imported once.
    async fn key_pair(
        &self,
        launch: &LaunchConfig,
        ssh_cfg: &SshConfig,
        state: &mut CaseState,
    ) -> Result<String> {
        let (ec2, name, tags, store) = (self.ec2, self.name, self.tags, self.store);
        let public = match (&launch.key_name, &ssh_cfg.identity) {
            (Some(_), _) => None,
            (None, Some(id)) => Some((
                public_half(id)?,
                format!("the public half of {}", id.display()),
            )),
            (None, None) => Some((
                case_key(store)?,
                format!("private key in {}", case_key_path(store.dir()).display()),
            )),
        };
        Ok(match (&launch.key_name, public) {
            (Some(k), _) => k.clone(),
            (None, None) => unreachable!("a public key is chosen when no key pair is named"),
            (None, Some((public, origin))) => {
                if !ec2.key_pair_exists(name).await? {
                    ec2.import_key_pair(name, &public, tags).await?;
                    output::note(format!("imported key pair {name} ({origin})"));
                }
                state.key_name = Some(name.to_owned());
                state.save(store)?;
                name.to_owned()
            }
        })
    }

    /// The case's role and instance profile for SSM, made where missing (recorded in the
    /// case state before it exists, so a crash leaves nothing ec2-killall does not know).
    async fn ssm_profile(&self, state: &mut CaseState) -> Result<String> {
        let (name, store) = (self.name, self.store);
        let iam = super::iam::Iam::new(self.ec2);
        let record = || {
            state.iam_profile = Some(name.to_owned());
            state.save(store)
        };
        if iam.ensure_ssm_profile(name, self.tags, record).await? {
            output::note(format!(
                "created IAM role and instance profile {name} ({}) for SSM",
                super::iam::SSM_POLICY
            ));
        }
        Ok(name.to_owned())
    }

    /// The security groups to launch in: the given ones as they are; the case's, opened to
    /// the ports asked for, or made.
    async fn security_group(
        &self,
        group: Group,
        launch: &LaunchConfig,
        state: &mut CaseState,
    ) -> Result<Vec<String>> {
        let (ec2, name, tags, store) = (self.ec2, self.name, self.tags, self.store);
        Ok(match group {
            Group::Given => launch.security_groups.clone(),
            Group::Found(found, cidr) => {
                if let Some(cidr) = cidr {
                    ec2.authorize(&found, &launch.open_ports, &cidr).await?;
                }
                state.security_group = Some(found.clone());
                state.save(store)?;
                vec![found]
            }
            Group::Make { vpc, cidr, ssm } => {
                let id = ec2
                    .create_case_group(name, &vpc, cidr.as_ref(), &launch.open_ports, tags, !ssm)
                    .await?;
                let ports: Vec<String> = std::iter::once(22)
                    .filter(|_| !ssm)
                    .chain(
                        launch
                            .open_ports
                            .iter()
                            .copied()
                            .filter(|&p| p != 22 || ssm),
                    )
                    .map(|p| p.to_string())
                    .collect();
                output::note(match (cidr, ssm) {
                    (None, _) => format!(
                        "created security group {id} ({name}): no ingress at all (transport ssm)"
                    ),
                    (Some(cidr), true) => format!(
                        "created security group {id} ({name}): TCP {} from {cidr} only \
                         (transport ssm: nothing else)",
                        ports.join(",")
                    ),
                    (Some(cidr), false) => format!(
                        "created security group {id} ({name}): TCP {} from {cidr} only, and all \
                         traffic between the case's instances",
                        ports.join(",")
                    ),
                });
                state.security_group = Some(id.clone());
                state.save(store)?;
                vec![id]
            }
        })
    }
}

/// Who may reach port 22: the configured CIDR; with private addresses the VPC's CIDR; else
/// the caller's public address. Never 0.0.0.0/0 unless asked for.
fn ssh_cidr(
    launch: &LaunchConfig,
    ssh_cfg: &SshConfig,
    vpc_cidr: Option<&str>,
) -> Result<ipnet::IpNet> {
    if let Some(c) = launch.ssh_cidr {
        return Ok(c);
    }
    if ssh_cfg.address_mode() == AddressMode::PrivateIp {
        if let Some(c) = vpc_cidr.and_then(|c| c.parse().ok()) {
            return Ok(c);
        }
    }
    if ssh_cfg.allow.is_none() {
        if let Some(ip) = public_ip() {
            return Ok(ipnet::IpNet::from(ip));
        }
    }
    Err(Error::input(
        "cannot tell who should reach SSH on the case's security group: give --ssh-cidr / \
         EC2_TOOLS_SSH_CIDR (your public address/32), or --security-group",
    ))
}

/// This machine's public IPv4 address as AWS sees it (checkip.amazonaws.com), if reachable.
fn public_ip() -> Option<std::net::IpAddr> {
    use std::io::{Read, Write};
    use std::net::ToSocketAddrs;
    let addr = ("checkip.amazonaws.com", 80)
        .to_socket_addrs()
        .ok()?
        .next()?;
    let mut s =
        std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(3)).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(3)))
        .ok()?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: checkip.amazonaws.com\r\n\r\n")
        .ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    body.rsplit("\r\n\r\n").next()?.trim().parse().ok()
}

/// The public half of an identity file: `<file>.pub` beside it, else derived from an
/// unencrypted OpenSSH private key. Without it the instances could not be told which key to
/// accept: a configuration error, found before anything is made.
fn public_half(identity: &std::path::Path) -> Result<String> {
    let pub_file = {
        let mut p = identity.as_os_str().to_owned();
        p.push(".pub");
        std::path::PathBuf::from(p)
    };
    if let Ok(text) = std::fs::read_to_string(&pub_file) {
        if let Some(line) = text.lines().find(|l| !l.trim().is_empty()) {
            return Ok(line.trim().to_owned());
        }
    }
    std::fs::read_to_string(identity)
        .ok()
        .and_then(|t| ssh_key::PrivateKey::from_openssh(t.trim()).ok())
        .filter(|k| !k.is_encrypted())
        .and_then(|k| k.public_key().to_openssh().ok())
        .ok_or_else(|| {
            Error::input(format!(
                "identity file {}: cannot tell its public half to launch with (put {} beside \
                 it, or give --key-name of an EC2 key pair holding it)",
                identity.display(),
                pub_file.display()
            ))
        })
}

/// The identity to log in with when none is configured and no key pair is named: the case
/// key, made now if it does not exist yet (it is what the instances will be launched with).
/// Regression: the first ec2-create of a case resolved its SSH settings before the key
/// existed, launched with it, and then had no key to log in with.
pub fn default_identity(
    store: &Store,
    launch: &LaunchConfig,
    ssh: &SshConfig,
) -> Result<Option<std::path::PathBuf>> {
    let making = ssh.identity.is_none() && launch.key_name.is_none();
    if making {
        case_key(store)?;
    }
    Ok(crate::case::store::login_identity(
        ssh.identity.clone(),
        store.dir(),
        making,
    ))
}

/// The case key's public half (OpenSSH format), generating the pair on first use.
fn case_key(store: &Store) -> Result<String> {
    store.state_dir()?;
    let private = case_key_path(store.dir());
    let public = private.with_extension("pub");
    if private.is_file() && public.is_file() {
        return std::fs::read_to_string(&public).input_err(public.display());
    }
    let key =
        ssh_key::PrivateKey::random(&mut ssh_key::rand_core::OsRng, ssh_key::Algorithm::Ed25519)
            .map_err(|e| Error::infra(format!("generating an ed25519 key: {e}")))?;
    let pem = key
        .to_openssh(ssh_key::LineEnding::LF)
        .map_err(|e| Error::infra(format!("encoding the case key: {e}")))?;
    let pubtext = key
        .public_key()
        .to_openssh()
        .map_err(|e| Error::infra(format!("encoding the case key: {e}")))?;
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&private)
            .infra_err(private.display())?;
        f.write_all(pem.as_bytes()).infra_err(private.display())?;
    }
    std::fs::write(&public, format!("{pubtext}\n")).infra_err(public.display())?;
    Ok(pubtext)
}
