//! Where the EC2 calls go, checked before the first one: the shared SDK configuration (region,
//! credentials, our retry policy), the endpoint (an override, or the region's as the SDK
//! resolves it), a region AWS does not have, a host that does not resolve — each said in one
//! line rather than as a minute of retries. What does not belong here: the calls (mod.rs).

use super::retry;
use crate::error::{Error, Result};
use aws_credential_types::provider::ProvideCredentials;

/// The AWS configuration every client shares (the default chain, our retry policy), with a
/// region and usable credentials checked: a missing one is said in one line (exit 2).
pub(crate) async fn sdk_config(region: Option<&str>) -> Result<aws_config::SdkConfig> {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(retry) = retry::config() {
        loader = loader.retry_config(retry);
    }
    if let Some(r) = region {
        loader = loader.region(aws_config::Region::new(r.to_owned()));
    }
    let sdk = loader.load().await;
    if sdk.region().is_none() {
        return Err(Error::input(
            "no AWS region configured: set --region, AWS_REGION or a profile's region",
        ));
    }
    let provider = sdk.credentials_provider().ok_or_else(|| {
        Error::input("no AWS credentials provider: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY")
    })?;
    if let Err(e) = provider.provide_credentials().await {
        // The chain's report is a page long: its first line says it.
        let why = e.to_string();
        let why = why
            .lines()
            .next()
            .unwrap_or_default()
            .trim_end_matches(". Attempted:");
        return Err(Error::input(format!(
            "no usable AWS credentials (set AWS_PROFILE, run `aws sso login`, or set \
             AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY): {why}"
        )));
    }
    Ok(sdk)
}

/// A region AWS does not have is bad input named in one line, with the nearest real one,
/// before any call: under an endpoint override (an emulator answers anything, slowly and
/// badly), or when the region's own endpoint does not resolve. A region newer than
/// [`crate::catalog::REGIONS`] whose endpoint resolves is let through.
pub(super) fn check_region(region: &str, url: &str) -> Result<()> {
    if crate::catalog::REGIONS.contains(&region) {
        return Ok(());
    }
    let overridden = std::env::var_os("AWS_ENDPOINT_URL").is_some_and(|v| !v.is_empty())
        || std::env::var_os("AWS_ENDPOINT_URL_EC2").is_some_and(|v| !v.is_empty());
    if overridden || check_endpoint_resolves(url).is_err() {
        return Err(Error::input(format!(
            "region {region:?}: not an AWS region (the nearest is {}; --region / AWS_REGION)",
            crate::catalog::nearest_region(region)
        )));
    }
    Ok(())
}

/// The EC2 endpoint the calls go to: `AWS_ENDPOINT_URL_EC2` or `AWS_ENDPOINT_URL` (the local
/// cloud), else the region's, as the SDK's own resolver finds it.
pub(super) async fn endpoint_url(sdk: &aws_config::SdkConfig, region: &str) -> Result<String> {
    use aws_sdk_ec2::config::endpoint::{DefaultResolver, Params, ResolveEndpoint};
    let given = std::env::var("AWS_ENDPOINT_URL_EC2")
        .ok()
        .filter(|u| !u.is_empty())
        .or_else(|| sdk.endpoint_url().map(str::to_owned));
    if let Some(url) = given {
        return Ok(url);
    }
    let params = Params::builder()
        .region(region)
        .use_fips(sdk.use_fips().unwrap_or(false))
        .use_dual_stack(sdk.use_dual_stack().unwrap_or(false))
        .build()
        .map_err(|e| Error::input(format!("region {region:?}: {e}")))?;
    let endpoint = DefaultResolver::new()
        .resolve_endpoint(&params)
        .await
        .map_err(|e| Error::input(format!("region {region:?}: no EC2 endpoint: {e}")))?;
    Ok(endpoint.url().to_owned())
}

/// A host that does not resolve is a wrong endpoint or region, not a passing fault: said at
/// once, in one line, rather than after a minute of retries (exit 3). Decided by the lookup
/// itself, before any call; a lookup that fails later, mid-run, is retried like any fault.
pub(super) fn check_endpoint_resolves(url: &str) -> Result<()> {
    use std::net::ToSocketAddrs;
    let Some((host, port)) = endpoint_host(url) else {
        return Err(Error::input(format!("{url}: not an endpoint URL")));
    };
    match (host.as_str(), port)
        .to_socket_addrs()
        .map(|mut a| a.next())
    {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(Error::infra(format!("{url}: {host} has no address"))),
        Err(e) => Err(Error::infra(format!(
            "{url}: cannot resolve {host} (a wrong AWS_ENDPOINT_URL or region?): {e}"
        ))),
    }
}

/// The host and port of an endpoint URL (`https://ec2.eu-west-1.amazonaws.com` → its host,
/// 443; `http://127.0.0.1:5000/` → 127.0.0.1, 5000; `http://[::1]:80`).
fn endpoint_host(url: &str) -> Option<(String, u16)> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let default = match scheme {
        "https" => 443,
        "http" => 80,
        _ => return None,
    };
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (h, after) = v6.split_once(']')?;
            (h, after.strip_prefix(':'))
        }
        None => match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        },
    };
    let port = match port {
        Some(p) => p.parse().ok()?,
        None => default,
    };
    (!host.is_empty()).then(|| (host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_hosts_are_read_from_their_urls() {
        let h = |u: &str| endpoint_host(u).map(|(h, p)| format!("{h} {p}"));
        assert_eq!(
            h("http://127.0.0.1:5000/").as_deref(),
            Some("127.0.0.1 5000")
        );
        assert_eq!(
            h("https://ec2.eu-west-1.amazonaws.com").as_deref(),
            Some("ec2.eu-west-1.amazonaws.com 443")
        );
        assert_eq!(h("http://[::1]:8080/x?y").as_deref(), Some("::1 8080"));
        assert_eq!(h("http://localhost").as_deref(), Some("localhost 80"));
        assert_eq!(h("ftp://x"), None);
        assert_eq!(h("http://:5000"), None);
        assert_eq!(h("127.0.0.1:5000"), None);
    }

    #[test]
    fn a_loopback_endpoint_resolves_without_asking_any_dns_server() {
        check_endpoint_resolves("http://127.0.0.1:1/").unwrap();
        let e = check_endpoint_resolves("not a url").unwrap_err();
        assert_eq!(e.code, crate::error::Code::Usage);
    }
}
