//! The account's running-instance vCPU quota against a launch, before anything is made: AWS
//! would refuse the excess only at RunInstances (`VcpuLimitExceeded`), after the case's key pair
//! and group exist and, in a paced launch, after the first calls already launched.
//!
//! The decision ([`judge`]) is pure; reading the quota (Service Quotas) and what is in use
//! (DescribeInstances, DescribeInstanceTypes for their vCPUs) is [`Fleet::quota_allows`]. A
//! quota that cannot be read (no permission, an emulator without Service Quotas) is said once
//! and the launch goes on: RunInstances still refuses what does not fit. What does not belong
//! here: the quota codes (crate::catalog), the launch itself (fleet.rs).

use super::ec2::TypeInfo;
use super::fleet::Fleet;
use super::lookup::Lookup;
use crate::config::SpotMode;
use crate::error::{Error, Result};
use crate::output;
use std::collections::BTreeMap;

/// One quota, read: its code and name, its value and the vCPUs counted against it now.
#[derive(Debug, Clone, PartialEq)]
pub struct QuotaRead {
    pub code: &'static str,
    pub name: &'static str,
    pub limit: f64,
    pub in_use: u32,
}

/// What a launch may do under its quotas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// All of it.
    Fits,
    /// Only this many instances (`--min-ready` accepts that many).
    Partial(u32),
    /// None: the refusal, naming the quota, what is in use and how to ask for more.
    Refused(String),
}

/// Whether `count` instances of `per_instance` vCPUs fit in `quotas` (their free vCPUs
/// summed: spot then on-demand under `--spot fallback`); with `min_ready`, as many as fit
/// if that is enough.
pub fn judge(
    quotas: &[QuotaRead],
    per_instance: u32,
    count: u32,
    min_ready: Option<u32>,
    region: &str,
) -> Verdict {
    let free: f64 = quotas
        .iter()
        .map(|q| (q.limit - f64::from(q.in_use)).max(0.0))
        .sum();
    let need = f64::from(per_instance) * f64::from(count);
    if need <= free || per_instance == 0 {
        return Verdict::Fits;
    }
    let fit = (free / f64::from(per_instance)).floor() as u32;
    if min_ready.is_some_and(|m| fit >= m.max(1)) {
        return Verdict::Partial(fit);
    }
    let q = &quotas[0];
    let in_use: u32 = quotas.iter().map(|q| q.in_use).sum();
    let desired = (f64::from(in_use) + need).ceil();
    Verdict::Refused(format!(
        "{count} instances of {per_instance} vCPUs need {need} vCPUs, but quota {} ({}) in \
         {region} is {} vCPUs with {in_use} in use; ask for more in the Service Quotas console \
         (https://console.aws.amazon.com/servicequotas/home/services/ec2/quotas/{}) or with \
         `aws service-quotas request-service-quota-increase --service-code ec2 --quota-code {} \
         --desired-value {desired} --region {region}`, or accept {fit} with --min-ready",
        q.code,
        q.name,
        quotas.iter().map(|q| q.limit).sum::<f64>(),
        q.code,
        q.code,
    ))
}

impl Fleet {
    /// How many of `count` instances of the launch's first type the quota allows (all of
    /// them when it cannot be read, with a note).
    pub(crate) async fn quota_allows(
        &self,
        types: &BTreeMap<String, TypeInfo>,
        first_type: &str,
        spot: SpotMode,
        ask: super::fleet::Ask,
    ) -> Result<u32> {
        let count = ask.count;
        let Some(per_instance) = types.get(first_type).and_then(|t| t.vcpus) else {
            return Ok(count);
        };
        if count == 0 {
            return Ok(0);
        }
        let markets: &[bool] = match spot {
            SpotMode::Off => &[false],
            SpotMode::On => &[true],
            SpotMode::Fallback => &[true, false],
        };
        let quotas = match self.read_quotas(first_type, markets).await {
            Ok(Some(q)) => q,
            Ok(None) => return Ok(count),
            Err(e) => {
                output::note(format!(
                    "{e}: the vCPU quota is not checked before launching"
                ));
                return Ok(count);
            }
        };
        // The roles still to come are reserved: a partial fleet is this role's.
        let min_ready = ask.min_ready.map(|m| m.saturating_add(ask.later));
        let asked = count.saturating_add(ask.later);
        match judge(&quotas, per_instance, asked, min_ready, &self.ec2.region) {
            Verdict::Fits => Ok(count),
            Verdict::Partial(n) => {
                let n = n.saturating_sub(ask.later).min(count);
                output::note(format!(
                    "the vCPU quota {} allows {n} of {count} instances: launching {n} (--min-ready)",
                    quotas[0].code
                ));
                Ok(n)
            }
            Verdict::Refused(why) => Err(Error::input(why)),
        }
    }

    /// The quotas `instance_type` counts against in each market, with the vCPUs in use
    /// (`None`: a family without a known quota).
    async fn read_quotas(
        &self,
        instance_type: &str,
        markets: &[bool],
    ) -> Result<Option<Vec<QuotaRead>>> {
        let lookup = Lookup::new(&self.ec2);
        let mut quotas = Vec::new();
        let running = self.ec2.running_instances().await?;
        let kinds: Vec<String> = running
            .iter()
            .filter_map(|i| i.instance_type.clone())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let vcpus = if kinds.is_empty() {
            BTreeMap::new()
        } else {
            self.ec2.instance_types(&kinds).await?
        };
        for &spot in markets {
            let Some((code, name)) = crate::catalog::vcpu_quota(instance_type, spot) else {
                return Ok(None);
            };
            let in_use = running
                .iter()
                .filter(|i| i.spot == spot)
                .filter_map(|i| i.instance_type.as_deref())
                .filter(|t| crate::catalog::vcpu_quota(t, spot).map(|q| q.0) == Some(code))
                .map(|t| vcpus.get(t).and_then(|v| v.vcpus).unwrap_or(0))
                .sum();
            let limit = lookup.ec2_quota(code).await?;
            quotas.push(QuotaRead {
                code,
                name,
                limit,
                in_use,
            });
        }
        Ok(Some(quotas))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(limit: f64, in_use: u32) -> QuotaRead {
        QuotaRead {
            code: "L-1216C47A",
            name: "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances",
            limit,
            in_use,
        }
    }

    #[test]
    fn a_launch_past_the_vcpu_quota_is_refused_naming_the_quota_use_and_the_way_to_more() {
        assert_eq!(
            judge(&[q(32.0, 8)], 2, 12, None, "eu-west-1"),
            Verdict::Fits
        );
        let Verdict::Refused(why) = judge(&[q(32.0, 8)], 2, 200, None, "eu-west-1") else {
            panic!("refused")
        };
        for piece in [
            "400 vCPUs",
            "L-1216C47A",
            "is 32 vCPUs with 8 in use",
            "--desired-value 408",
            "--region eu-west-1",
            "accept 12 with --min-ready",
        ] {
            assert!(why.contains(piece), "{piece}: {why}");
        }
        // --min-ready: as many as fit, when that is enough.
        assert_eq!(
            judge(&[q(32.0, 8)], 2, 200, Some(10), "r"),
            Verdict::Partial(12)
        );
        assert!(matches!(
            judge(&[q(32.0, 8)], 2, 200, Some(13), "r"),
            Verdict::Refused(_)
        ));
        // Over the quota already: nothing fits.
        assert!(matches!(
            judge(&[q(4.0, 8)], 2, 1, Some(1), "r"),
            Verdict::Refused(_)
        ));
        // Spot, then on-demand: their free vCPUs add up.
        assert_eq!(
            judge(&[q(8.0, 0), q(8.0, 0)], 2, 8, None, "r"),
            Verdict::Fits
        );
    }
}
