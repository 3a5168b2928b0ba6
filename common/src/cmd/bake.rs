//! ec2-bake NAME: an AMI from a set-up instance (the ECS/Packer seed's Packer stage in one
//! command), so a setup that takes minutes runs once, not per instance per run. The image is
//! made from one instance (the lowest selected index), waited for until `available`, tagged
//! with the case and owner (its snapshots too), printed, and recorded as `"ami"` in the test
//! case's own `ec2-tools.json` so the next `ec2-create` launches ready-made instances.
//! `--list` shows this owner's baked images; `--delete AMI` deregisters one and deletes its
//! snapshots. Images outlive cases: ec2-killall deletes them only with `--images`.

use crate::aws::ec2::{self, owner, TAG_CASE, TAG_OWNER};
use crate::aws::images::ImageInfo;
use crate::case::select::select_some;
use crate::case::store::Store;
use crate::cli::{CaseDirArgs, SelectArgs};
use crate::config::parse_duration;
use crate::error::{Code, Error, Result};
use crate::output;
use crate::settings;
use crate::tool::{self, Tool};
use clap::Parser;
use std::time::{Duration, Instant};

/// The command line of `ec2-bake` (its `--help` is the reference).
#[derive(Parser, Debug)]
#[command(
    version,
    long_about = None,
    about = "Make an AMI (named NAME) from a set-up instance of the case (the lowest selected \
index), wait until it is available, print its id and record it as \"ami\" in the case's \
ec2-tools.json, so the next ec2-create launches ready-made instances",
    after_help = "Examples:
  ec2-create 1 --setup install.sh && ec2-bake loadgen-v1 && ec2-killall
  ec2-create 50                                   launches from loadgen-v1 (ec2-tools.json)
  ec2-bake --list                                 your baked images: id, name, state, case
  ec2-bake --delete ami-0abc1234def567890         deregister it, delete its snapshots"
)]
pub struct Cli {
    /// The image's name (unique in the account and region)
    #[arg(value_name = "NAME", required_unless_present_any = ["list", "delete"])]
    name: Option<String>,
    /// Make the image without rebooting the instance first (faster; the file system is
    /// copied as it is, not cleanly unmounted)
    #[arg(long)]
    no_reboot: bool,
    /// Give up waiting for the image after this long (exit 3; the image is kept)
    #[arg(long, value_name = "DURATION", default_value = "30m", value_parser = parse_duration)]
    timeout: Duration,
    /// List this owner's baked images: `<ami> <name> <state> <case> <created>`
    #[arg(long, conflicts_with_all = ["name", "delete"])]
    list: bool,
    /// Deregister this baked image and delete its snapshots
    #[arg(long, value_name = "AMI", conflicts_with = "name")]
    delete: Option<String>,
    #[command(flatten)]
    select: SelectArgs,
    #[command(flatten)]
    case: CaseDirArgs,
    #[command(flatten)]
    json: crate::cli::JsonArgs,
}

/// The `ec2-bake` tool.
pub struct Bake;

impl Tool for Bake {
    type Cli = Cli;

    fn run(cli: Cli) -> Result<Code> {
        cli.json.apply();
        let (settings, cfg) = cli.case.resolve()?;
        let rt = crate::aws::runtime()?;
        if cli.list {
            return list(&rt, &cfg);
        }
        if let Some(ami) = &cli.delete {
            return delete(&rt, &cfg, ami);
        }
        bake(&rt, &cli, &settings, &cfg)
    }
}

/// `--list`: your baked images, a line each.
fn list(rt: &tokio::runtime::Runtime, cfg: &crate::config::Config) -> Result<Code> {
    rt.block_on(async {
        let ec2 = ec2::connect(cfg.region.as_deref()).await?;
        for i in ec2.owned_images(&owner(), None).await? {
            output::record(
                serde_json::json!({"ami": i.id, "name": i.name, "state": i.state,
                    "case": i.case, "created": i.created}),
                format!(
                    "{} {} {} {} {}",
                    i.id,
                    i.name,
                    i.state,
                    or_dash(&i.case),
                    or_dash(&i.created)
                ),
            );
        }
        Ok(Code::Ok)
    })
}

/// `--delete AMI`: one of your baked images, and its snapshots.
fn delete(rt: &tokio::runtime::Runtime, cfg: &crate::config::Config, ami: &str) -> Result<Code> {
    rt.block_on(async {
        let ec2 = ec2::connect(cfg.region.as_deref()).await?;
        let mine = ec2.owned_images(&owner(), None).await?;
        let Some(image) = mine.iter().find(|i| i.id == ami) else {
            return Err(Error::input(format!(
                "{ami}: not one of your baked images (ec2-bake --list shows them)"
            )));
        };
        ec2.delete_image(image).await?;
        output::record(
            serde_json::json!({"ami": ami, "state": "deleted"}),
            format!("{ami} deleted"),
        );
        output::note(format!(
            "deregistered {ami} and deleted {}",
            output::count(image.snapshots.len(), "snapshot")
        ));
        Ok(Code::Ok)
    })
}

/// Bake the lowest selected instance into an image named NAME, wait until it is available,
/// and record it as the case's `ami`.
fn bake(
    rt: &tokio::runtime::Runtime,
    cli: &Cli,
    settings: &crate::settings::Settings,
    cfg: &crate::config::Config,
) -> Result<Code> {
    let name = cli.name.as_deref().expect("clap requires NAME");
    let store = Store::new(&cfg.dir);
    let hosts = select_some(&store, &cli.select.resolve())?;
    let source = hosts
        .iter()
        .find(|d| !d.is_static())
        .ok_or_else(|| Error::input("a host of your own cannot be baked: --select an instance"))?;
    if hosts.len() > 1 {
        output::note(format!(
            "baking from {} (the lowest of {} selected; --select N picks another)",
            source.label(),
            hosts.len()
        ));
    }
    // The user's tags (`--tag` / "tags") go on the image and its snapshots at creation too.
    let mut tags = vec![
        (TAG_CASE.to_owned(), cfg.case.clone()),
        (TAG_OWNER.to_owned(), owner()),
    ];
    let user_tags = settings.value(&crate::settings::TAGS, None, crate::config::parse_tags)?;
    tags.extend(user_tags.unwrap_or_default());
    let ami = rt.block_on(async {
        let ec2 = ec2::connect(cfg.region.as_deref()).await?;
        let ami = ec2
            .create_image(&source.id, name, cli.no_reboot, &tags)
            .await?;
        output::note(format!(
            "creating {ami} ({name}) from {}{}",
            source.label(),
            if cli.no_reboot { "" } else { ", rebooting it" }
        ));
        let image = wait_available(&ec2, &ami, cli.timeout).await?;
        output::note(format!(
            "{ami} is available ({})",
            output::count(image.snapshots.len(), "snapshot")
        ));
        Ok::<_, Error>(ami)
    })?;
    output::record(serde_json::json!({"ami": ami, "name": name}), &ami);
    let (file, shadow) = settings.write_to_file(&settings::AMI, &ami)?;
    output::note(match shadow {
        None => format!(
            "recorded \"ami\": \"{ami}\" in {}: the next ec2-create launches from it",
            file.display()
        ),
        Some(env) => format!(
            "recorded \"ami\": \"{ami}\" in {}, but {env} is set and wins over the file",
            file.display()
        ),
    });
    Ok(Code::Ok)
}

fn or_dash(s: &str) -> &str {
    if s.is_empty() {
        "-"
    } else {
        s
    }
}

/// Until the image is `available` (a bar on a terminal); `failed` or the timeout is exit 3.
async fn wait_available(ec2: &ec2::Ec2, ami: &str, timeout: Duration) -> Result<ImageInfo> {
    let deadline = Instant::now() + timeout;
    let bar = output::progress(1, "available");
    loop {
        tool::check_interrupted()?;
        if let Some(i) = ec2.image(ami).await? {
            bar.set_message(format!("{ami}: {}", i.state));
            match i.state.as_str() {
                "available" => return Ok(i),
                "failed" | "error" | "invalid" | "deregistered" => {
                    return Err(Error::infra(format!("{ami}: image {}", i.state)))
                }
                _ => {}
            }
        }
        if Instant::now() >= deadline {
            return Err(Error::infra(format!(
                "timed out after {} waiting for {ami} to be available (the image is kept; \
                 ec2-bake --list shows it)",
                humantime::format_duration(timeout)
            )));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}
