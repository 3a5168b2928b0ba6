//! The SDK's retry policy for every EC2 call, tuned for bulk work (one place, so ec2.rs holds
//! only calls).
//!
//! `standard` mode with [`MAX_ATTEMPTS`] attempts (exponential backoff with full jitter, capped
//! at 20 s) unless `AWS_RETRY_MODE` / `AWS_MAX_ATTEMPTS` say otherwise. Ten, not the SDK's three:
//! EC2's per-account token buckets throttle bulk work for seconds at a time, and a throttled
//! call retried late is far cheaper than a load test aborted halfway. `adaptive` mode was not
//! chosen: its client-side rate limiter slows every later call of the process after a burst
//! of throttling, and RunInstances — the call that matters — is paced by pace.rs instead.
//! Capacity errors (`InsufficientInstanceCapacity`, HTTP 500) are never retried by the SDK:
//! they last minutes, and the launcher tries the next pool instead. Nor are a refused
//! connection or an unknown host name (a wrong endpoint or region): reported at once. Nor is
//! an HTTP 500 whose body is no AWS error (an emulator that does not implement the call):
//! retrying it ten times took a minute and cured nothing.

use aws_sdk_ec2::error::ProvideErrorMetadata;

/// The retry configuration, unless the user's environment chose one.
pub fn config() -> Option<aws_config::retry::RetryConfig> {
    if std::env::var_os("AWS_RETRY_MODE").is_some()
        || std::env::var_os("AWS_MAX_ATTEMPTS").is_some()
    {
        return None;
    }
    Some(
        aws_config::retry::RetryConfig::standard()
            .with_max_attempts(MAX_ATTEMPTS)
            .with_max_backoff(std::time::Duration::from_secs(20)),
    )
}

/// Attempts per API call (the first and nine retries) unless `AWS_MAX_ATTEMPTS` is set.
pub const MAX_ATTEMPTS: u32 = 10;

/// Error codes that mean "no capacity in this pool": retrying the same call does not help.
pub const CAPACITY_ERRORS: &[&str] = &[
    "InsufficientInstanceCapacity",
    "InsufficientCapacity",
    "InsufficientHostCapacity",
    "InsufficientReservedInstanceCapacity",
    "UnfulfillableCapacity",
    "SpotMaxPriceTooLow",
    "MaxSpotInstanceCountExceeded",
];

/// True when an error answer's body is an AWS error document (EC2's and S3's XML, or a JSON
/// protocol's `__type`), whatever its code.
fn is_aws_error_body(body: &[u8]) -> bool {
    let text = String::from_utf8_lossy(&body[..body.len().min(4096)]);
    text.contains("<Code>") || text.contains("\"__type\"")
}

/// Forbids the SDK's retry of a capacity error (its HTTP 500 would otherwise be retried), a
/// refused connection and an answer that is no AWS error (HTTP 500/501).
#[derive(Debug)]
pub struct FinalErrors;

impl aws_sdk_ec2::config::retry::ClassifyRetry for FinalErrors {
    fn classify_retry(
        &self,
        ctx: &aws_sdk_ec2::config::interceptors::InterceptorContext,
    ) -> aws_sdk_ec2::config::retry::RetryAction {
        use aws_sdk_ec2::config::retry::RetryAction;
        use aws_sdk_ec2::operation::{
            run_instances::RunInstancesError, start_instances::StartInstancesError,
        };
        let Some(Err(err)) = ctx.output_or_error() else {
            return RetryAction::NoActionIndicated;
        };
        if let Some(conn) = err.as_connector_error() {
            // A refused connection is a wrong endpoint, not a passing fault: say so now rather
            // than after a minute of backoff. (A host name that does not resolve is found
            // before the first call: ec2::connect.)
            let mut e: Option<&(dyn std::error::Error + 'static)> = Some(conn);
            while let Some(cur) = e {
                let refused = cur
                    .downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused);
                if refused {
                    return RetryAction::RetryForbidden;
                }
                e = cur.source();
            }
            return RetryAction::NoActionIndicated;
        }
        if let Some(resp) = ctx.response() {
            // HTTP 500/501 with a body that is no AWS error: an emulator's crash page for a
            // call it does not implement (plain moto's placement groups). No retry cures it.
            // Gateways' 502-504 stay retried: those pass.
            let status = resp.status().as_u16();
            let body = resp.body().bytes().unwrap_or_default();
            if (status == 500 || status == 501) && !is_aws_error_body(body) {
                return RetryAction::RetryForbidden;
            }
        }
        let Some(op) = err.as_operation_error() else {
            return RetryAction::NoActionIndicated;
        };
        let code = op
            .downcast_ref::<RunInstancesError>()
            .and_then(|e| e.code())
            .or_else(|| {
                op.downcast_ref::<StartInstancesError>()
                    .and_then(|e| e.code())
            });
        if code.is_some_and(|c| CAPACITY_ERRORS.contains(&c)) {
            RetryAction::RetryForbidden
        } else {
            RetryAction::NoActionIndicated
        }
    }

    fn name(&self) -> &'static str {
        "ec2-tools: capacity errors, refused connections and non-AWS 500s are final"
    }

    fn priority(
        &self,
    ) -> aws_smithy_runtime_api::client::retries::classifiers::RetryClassifierPriority {
        use aws_smithy_runtime_api::client::retries::classifiers::RetryClassifierPriority as P;
        P::run_after(P::transient_error_classifier())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_emulators_html_crash_page_is_no_aws_error_but_ec2_and_s3_errors_are() {
        assert!(!is_aws_error_body(
            b"<!doctype html><title>500 Internal Server Error</title>"
        ));
        assert!(is_aws_error_body(
            b"<Response><Errors><Error><Code>InternalError</Code></Error></Errors></Response>"
        ));
        assert!(is_aws_error_body(b"{\"__type\":\"ThrottlingException\"}"));
    }
}
