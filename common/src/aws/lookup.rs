//! What AWS publishes about itself, asked before a launch: the AMI id an image parameter holds
//! (SSM `GetParameter`), the account's running-instance vCPU quota (Service Quotas
//! `GetServiceQuota`) and prices (the Price List API's `GetProducts`, which lives in us-east-1;
//! spot from EC2's `DescribeSpotPriceHistory`). One client each, built from the EC2 client's
//! configuration (region, credentials, endpoint).
//!
//! What does not belong here: deciding with the answers (fleet.rs checks a launch, cmd/ prints
//! costs), the names themselves (crate::catalog).

use super::ec2::Ec2;
use super::errors::aws_error;
use crate::error::{Error, Result};

/// The clients of the services a launch consults besides EC2.
pub struct Lookup {
    ssm: aws_sdk_ssm::Client,
    quotas: aws_sdk_servicequotas::Client,
    pricing: aws_sdk_pricing::Client,
    region: String,
}

/// Where the Price List API is: us-east-1 (and, for China's partition, cn-northwest-1).
fn pricing_region(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "cn-northwest-1"
    } else {
        "us-east-1"
    }
}

impl Lookup {
    /// The clients, configured as `ec2` is.
    pub fn new(ec2: &Ec2) -> Lookup {
        let sdk = &ec2.sdk;
        // As EC2's: an answer that is no AWS error (an emulator without the service) or a
        // refused connection is not retried for a minute.
        let ssm = aws_sdk_ssm::config::Builder::from(sdk)
            .retry_classifier(super::retry::FinalErrors)
            .interceptor(crate::log::AwsCallLog)
            .build();
        let quotas = aws_sdk_servicequotas::config::Builder::from(sdk)
            .retry_classifier(super::retry::FinalErrors)
            .interceptor(crate::log::AwsCallLog)
            .build();
        let pricing = aws_sdk_pricing::config::Builder::from(sdk)
            .region(aws_config::Region::from_static(pricing_region(&ec2.region)))
            .retry_classifier(super::retry::FinalErrors)
            .interceptor(crate::log::AwsCallLog)
            .build();
        Lookup {
            ssm: aws_sdk_ssm::Client::from_conf(ssm),
            quotas: aws_sdk_servicequotas::Client::from_conf(quotas),
            pricing: aws_sdk_pricing::Client::from_conf(pricing),
            region: ec2.region.clone(),
        }
    }

    /// The value of SSM parameter `name` (an AMI id, for the image parameters). A parameter
    /// that does not exist is bad input naming it (exit 2).
    pub async fn parameter(&self, name: &str) -> Result<String> {
        match self.ssm.get_parameter().name(name).send().await {
            Ok(out) => out
                .parameter()
                .and_then(|p| p.value())
                .map(str::to_owned)
                .ok_or_else(|| Error::infra(format!("GetParameter {name}: no value"))),
            Err(e) if super::errors::error_code(&e) == Some("ParameterNotFound") => {
                Err(Error::input(format!(
                    "SSM parameter {name}: not found in {}",
                    self.region
                )))
            }
            Err(e) => Err(aws_error("GetParameter", e)),
        }
    }

    /// The value of EC2 quota `code` (vCPUs, for the running-instance quotas).
    pub async fn ec2_quota(&self, code: &str) -> Result<f64> {
        let out = self
            .quotas
            .get_service_quota()
            .service_code("ec2")
            .quota_code(code)
            .send()
            .await
            .map_err(|e| aws_error("GetServiceQuota", e))?;
        out.quota()
            .and_then(|q| q.value())
            .ok_or_else(|| Error::infra(format!("GetServiceQuota {code}: no value")))
    }

    /// The on-demand Linux price of `instance_type` in this region, USD per hour (`None`: the
    /// Price List has no such product).
    pub async fn on_demand_price(&self, instance_type: &str) -> Result<Option<f64>> {
        use aws_sdk_pricing::types::{Filter, FilterType};
        let term = |field: &str, value: &str| {
            Filter::builder()
                .r#type(FilterType::TermMatch)
                .field(field)
                .value(value)
                .build()
                .map_err(|e| Error::infra(format!("GetProducts: {e}")))
        };
        let out = self
            .pricing
            .get_products()
            .service_code("AmazonEC2")
            .filters(term("instanceType", instance_type)?)
            .filters(term("regionCode", &self.region)?)
            .filters(term("operatingSystem", "Linux")?)
            .filters(term("tenancy", "Shared")?)
            .filters(term("preInstalledSw", "NA")?)
            .filters(term("capacitystatus", "Used")?)
            .max_results(10)
            .send()
            .await
            .map_err(|e| aws_error("GetProducts", e))?;
        Ok(out.price_list().iter().find_map(|p| on_demand_usd(p)))
    }
}

/// The hourly USD price in one Price List product document (its OnDemand term's dimension).
fn on_demand_usd(product: &str) -> Option<f64> {
    let v: serde_json::Value = serde_json::from_str(product).ok()?;
    let terms = v.get("terms")?.get("OnDemand")?.as_object()?;
    terms.values().find_map(|term| {
        term.get("priceDimensions")?
            .as_object()?
            .values()
            .find_map(|d| d.get("pricePerUnit")?.get("USD")?.as_str()?.parse().ok())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_price_list_product_gives_its_on_demand_hourly_price() {
        let doc = r#"{"product": {"sku": "X"}, "terms": {"OnDemand": {"X.JRTCKXETXF": {
            "priceDimensions": {"X.JRTCKXETXF.6YS6EN2CT7": {"unit": "Hrs",
            "pricePerUnit": {"USD": "0.0104000000"}}}}}}}"#;
        assert_eq!(on_demand_usd(doc), Some(0.0104));
        assert_eq!(on_demand_usd(r#"{"terms": {}}"#), None);
        assert_eq!(on_demand_usd("not json"), None);
        assert_eq!(pricing_region("eu-west-1"), "us-east-1");
        assert_eq!(pricing_region("cn-north-1"), "cn-northwest-1");
    }
}
