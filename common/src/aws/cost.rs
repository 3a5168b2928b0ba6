//! What a case costs, before, during and after: the price of each instance type per hour
//! (on-demand from the Price List API, spot from EC2's price history), cached in the case for a
//! day (`.ec2-tools/prices.json`), and the sums the tools print — the fleet's price per hour
//! with the TTL's worst case when launching, the cost so far in ec2-status, the instance-hours
//! and their cost when ec2-killall ends the case.
//!
//! A price that cannot be had (no permission, an emulator without the Price List, a type it
//! does not list) is said to be unknown, naming why; none is ever invented. What does not
//! belong here: the calls themselves (lookup.rs, ec2.rs), refusing a launch (fleet.rs does,
//! with [`Bill`]).

use super::ec2::Ec2;
use super::lookup::Lookup;
use crate::case::store::{load_state_file, save_state_file, Store};
use std::collections::{BTreeMap, BTreeSet};

/// How long a price read is used before it is asked for again.
const CACHE_FOR_S: u64 = 86_400;
const CACHE_FILE: &str = "prices.json";

/// One instance as the bill sees it: its type and market.
pub type Kind = (String, bool);

/// A price per instance-hour (USD), or why there is none.
pub type Priced = std::result::Result<f64, String>;

#[derive(serde::Serialize, serde::Deserialize, Default)]
struct Cache {
    /// `region/type/market` → the price (`null`: AWS lists none) and when it was read.
    prices: BTreeMap<String, Cached>,
}

#[derive(serde::Serialize, serde::Deserialize, Clone)]
struct Cached {
    usd_per_hour: Option<f64>,
    at: u64,
}

fn market(spot: bool) -> &'static str {
    if spot {
        "spot"
    } else {
        "on-demand"
    }
}

fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The prices of `kinds` in the client's region: from the case's cache when read within a
/// day, else asked (and cached). Never fails: an unknown price carries why.
pub async fn prices(ec2: &Ec2, store: &Store, kinds: &BTreeSet<Kind>) -> BTreeMap<Kind, Priced> {
    let path = store.state_dir().map(|d| d.join(CACHE_FILE));
    let mut cache: Cache = path
        .as_ref()
        .ok()
        .and_then(|p| load_state_file(p).ok())
        .unwrap_or_default();
    let lookup = Lookup::new(ec2);
    let now = now_s();
    let mut out = BTreeMap::new();
    let mut asked = false;
    for (itype, spot) in kinds {
        let key = format!("{}/{itype}/{}", ec2.region, market(*spot));
        let fresh = cache
            .prices
            .get(&key)
            .filter(|c| now.saturating_sub(c.at) < CACHE_FOR_S)
            .cloned();
        let read = match fresh {
            Some(c) => Ok(c.usd_per_hour),
            None => {
                let read = if *spot {
                    ec2.spot_price(itype).await
                } else {
                    lookup.on_demand_price(itype).await
                };
                if let Ok(p) = read {
                    let at = now;
                    cache.prices.insert(
                        key,
                        Cached {
                            usd_per_hour: p,
                            at,
                        },
                    );
                    asked = true;
                }
                read
            }
        };
        let priced = match read {
            Ok(p) => p.ok_or_else(|| format!("AWS lists no {} price for {itype}", market(*spot))),
            Err(e) => Err(e.to_string()),
        };
        out.insert((itype.clone(), *spot), priced);
    }
    if let (true, Ok(p)) = (asked, &path) {
        let _ = save_state_file(p, &cache);
    }
    out
}

/// A sum of prices, and the kinds whose price is unknown (with why).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bill {
    pub usd: f64,
    pub unknown: Vec<String>,
}

impl Bill {
    /// `$0.0312`, or what is unknown: `$0.0312 + unknown (c7g.large spot: …)`.
    pub fn show(&self) -> String {
        let known = usd(self.usd);
        if self.unknown.is_empty() {
            known
        } else {
            format!("{known} + unknown ({})", self.unknown.join("; "))
        }
    }
}

/// Dollars, to the cent above a dollar and to four places below.
pub fn usd(v: f64) -> String {
    if v >= 1.0 {
        format!("${v:.2}")
    } else {
        format!("${v:.4}")
    }
}

/// The price per hour of `instances` (one kind each), by `prices`.
pub fn hourly(instances: &[Kind], prices: &BTreeMap<Kind, Priced>) -> Bill {
    over(instances.iter().map(|k| (k, 1.0)), prices)
}

/// The cost of instances that ran `hours` each, by `prices`.
pub fn ran(instances: &[(Kind, f64)], prices: &BTreeMap<Kind, Priced>) -> Bill {
    over(instances.iter().map(|(k, h)| (k, *h)), prices)
}

fn over<'a>(items: impl Iterator<Item = (&'a Kind, f64)>, prices: &BTreeMap<Kind, Priced>) -> Bill {
    let mut bill = Bill::default();
    let mut unknown = BTreeSet::new();
    for (kind, hours) in items {
        match prices.get(kind) {
            Some(Ok(p)) => bill.usd += p * hours,
            Some(Err(why)) => {
                unknown.insert(format!("{} {}: {why}", kind.0, market(kind.1)));
            }
            None => {
                unknown.insert(format!("{} {}: not asked", kind.0, market(kind.1)));
            }
        }
    }
    bill.unknown = unknown.into_iter().collect();
    bill
}

/// The hours an instance launched at `launched_at` (RFC 3339) has run until now; per-second
/// billing, one minute at least.
pub fn hours_since(launched_at: Option<&str>) -> Option<f64> {
    let t = humantime::parse_rfc3339_weak(launched_at?).ok()?;
    let secs = std::time::SystemTime::now()
        .duration_since(t)
        .ok()?
        .as_secs();
    Some(secs.max(60) as f64 / 3600.0)
}

impl super::fleet::Fleet {
    /// Say what the case will cost per hour once `count` more instances of the first type
    /// run (and by the TTL, at worst), before anything is made; refuse it above
    /// `--max-hourly-cost`, or when a price it needs is unknown.
    pub(crate) async fn price_launch(
        &self,
        config: &crate::config::LaunchConfig,
        count: u32,
    ) -> crate::error::Result<()> {
        use crate::case::descriptor::InstanceState;
        use crate::error::Error;
        if count == 0 {
            return Ok(());
        }
        let spot = config.spot == crate::config::SpotMode::On;
        let new: Vec<Kind> = vec![(config.instance_types[0].clone(), spot); count as usize];
        let mut case: Vec<Kind> = self
            .store
            .load_all()?
            .iter()
            .filter(|d| matches!(d.state(), InstanceState::Running | InstanceState::Pending))
            .filter_map(|d| Some((d.instance_type.clone()?, d.market() == Some("spot"))))
            .collect();
        case.extend(new.iter().cloned());
        let kinds: BTreeSet<Kind> = case.iter().cloned().collect();
        let prices = prices(&self.ec2, &self.store, &kinds).await;
        let (one, all) = (hourly(&new[..1], &prices), hourly(&case, &prices));
        let mut say = format!(
            "cost: {count} × {} {} at {}/h; the case {}/h",
            new[0].0,
            market(spot),
            one.show(),
            all.show()
        );
        if let Some(ttl) = config.ttl {
            let h = ttl.as_secs_f64() / 3600.0;
            say.push_str(&format!(
                "; at most {} by the TTL ({})",
                usd(all.usd * h),
                humantime::format_duration(ttl)
            ));
        }
        crate::output::note(say);
        let Some(max) = config.max_hourly_cost else {
            return Ok(());
        };
        if !all.unknown.is_empty() {
            return Err(Error::input(format!(
                "--max-hourly-cost {}: a price is unknown ({}): not launching",
                usd(max),
                all.unknown.join("; ")
            )));
        }
        if all.usd > max {
            return Err(Error::input(format!(
                "the case would cost {}/h after this launch, above --max-hourly-cost {}",
                usd(all.usd),
                usd(max)
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bill_sums_known_prices_and_names_the_unknown_never_inventing_one() {
        let prices: BTreeMap<Kind, Priced> = [
            (("t3.micro".to_owned(), false), Ok(0.0104)),
            (
                ("c7g.large".to_owned(), true),
                Err("AccessDenied".to_owned()),
            ),
        ]
        .into_iter()
        .collect();
        let t3 = ("t3.micro".to_owned(), false);
        let b = hourly(&[t3.clone(), t3.clone(), t3.clone()], &prices);
        assert!(
            (b.usd - 0.0312).abs() < 1e-9 && b.unknown.is_empty(),
            "{b:?}"
        );
        assert_eq!(b.show(), "$0.0312");
        let g = ("c7g.large".to_owned(), true);
        let b = hourly(&[t3.clone(), g.clone(), g], &prices);
        assert_eq!(b.unknown, vec!["c7g.large spot: AccessDenied".to_owned()]);
        assert_eq!(b.show(), "$0.0104 + unknown (c7g.large spot: AccessDenied)");
        let b = ran(&[(t3, 2.5)], &prices);
        assert!((b.usd - 0.026).abs() < 1e-9);
        assert_eq!(usd(12.345), "$12.35");
        assert_eq!(
            hours_since(Some("2000-01-01T00:00:00Z")).map(|h| h > 1.0),
            Some(true)
        );
        assert_eq!(hours_since(None), None);
    }
}
