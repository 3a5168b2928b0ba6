//! Logs, for when a host or an AWS call misbehaves: `-v` shows every AWS call (action, HTTP
//! status, attempts, request id, duration) and each host's SSH phases (connect, handshake,
//! login, exec, exit) with durations; `-vv` adds the SDK's own debug events; `RUST_LOG`
//! (tracing's filter syntax) overrides both. Always on stderr — stdout stays data — and
//! without secrets: the SDK never logs the secret key and our events carry none.
//!
//! What does not belong here: user-facing notes and summaries (output.rs), which are not logs.

use tracing_subscriber::EnvFilter;

/// Install the stderr logger for `-v` repeated `verbosity` times (0: nothing, unless
/// `RUST_LOG` says otherwise).
pub fn init(verbosity: u8) {
    let filter = match std::env::var("RUST_LOG") {
        Ok(f) if !f.trim().is_empty() => EnvFilter::new(f),
        _ => EnvFilter::new(match verbosity {
            0 => "off",
            1 => "ec2_tools=info",
            _ => "ec2_tools=debug,aws_smithy_runtime=debug,aws_config=info,aws_sdk_ec2=debug",
        }),
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false)
        .try_init();
}

/// Logs every EC2 call once it is over: operation, status, attempts, request id, duration.
#[derive(Debug)]
pub(crate) struct AwsCallLog;

#[derive(Debug, Clone)]
struct Started(std::time::Instant);

impl aws_smithy_types::config_bag::Storable for Started {
    type Storer = aws_smithy_types::config_bag::StoreReplace<Self>;
}

impl aws_sdk_ec2::config::Intercept for AwsCallLog {
    fn name(&self) -> &'static str {
        "ec2-tools: AWS call log"
    }

    fn read_before_execution(
        &self,
        _ctx: &aws_sdk_ec2::config::interceptors::BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut aws_smithy_types::config_bag::ConfigBag,
    ) -> Result<(), aws_sdk_ec2::error::BoxError> {
        cfg.interceptor_state()
            .store_put(Started(std::time::Instant::now()));
        Ok(())
    }

    fn read_after_execution(
        &self,
        ctx: &aws_sdk_ec2::config::interceptors::FinalizerInterceptorContextRef<'_>,
        _rc: &aws_sdk_ec2::config::RuntimeComponents,
        cfg: &mut aws_smithy_types::config_bag::ConfigBag,
    ) -> Result<(), aws_sdk_ec2::error::BoxError> {
        let op = cfg
            .load::<aws_smithy_runtime_api::client::orchestrator::Metadata>()
            .map(|m| m.name().to_owned())
            .unwrap_or_default();
        let ms = cfg
            .load::<Started>()
            .map(|s| s.0.elapsed().as_millis())
            .unwrap_or_default();
        let attempts = cfg
            .load::<aws_smithy_runtime_api::client::retries::RequestAttempts>()
            .map(|a| a.attempts())
            .unwrap_or(1);
        let (status, request_id) = match ctx.response() {
            Some(r) => (
                r.status().as_u16(),
                r.headers()
                    .get("x-amzn-requestid")
                    .or_else(|| r.headers().get("x-amz-request-id"))
                    .unwrap_or("-")
                    .to_owned(),
            ),
            None => (0, "-".to_owned()),
        };
        let failed = matches!(ctx.output_or_error(), Some(Err(_)));
        tracing::info!(
            target: "ec2_tools::aws",
            "aws {op}: HTTP {status}{} in {ms} ms, {attempts} attempt{}, request id {request_id}",
            if failed { " (error)" } else { "" },
            if attempts == 1 { "" } else { "s" },
        );
        Ok(())
    }
}
