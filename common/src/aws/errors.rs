//! AWS errors as the tools' errors: one line with the exit code it stands for, and what EC2's
//! eventual consistency means for "not found" (an id fresh from RunInstances is not gone). What
//! does not belong here: which calls retry (retry.rs), the calls themselves (ec2.rs).

use crate::case::descriptor::{is_instance_id, Descriptor};
use crate::error::{AwsFailure, AwsFault, Code, Error};
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use std::collections::BTreeSet;

/// An SDK error as one line, with the exit code it stands for: AWS rejecting our parameters
/// (an unknown AMI, a bad subnet) is configuration (2); anything else is infrastructure (3).
/// What AWS said is kept as data in [`Error::aws`].
pub(crate) fn aws_error<E>(action: &str, err: SdkError<E>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let code = err.code().map(str::to_owned);
    let status = err.raw_response().map(|r| r.status().as_u16());
    let (msg, fault) = match (&code, err.message()) {
        (Some(c), m) => (
            match m {
                Some(m) => format!("{action}: {c}: {m}"),
                None => format!("{action}: {c}"),
            },
            Some(AwsFault::Code(c.clone())),
        ),
        _ if matches!(
            err,
            SdkError::DispatchFailure(_) | SdkError::TimeoutError(_)
        ) =>
        {
            (
                format!("{action}: cannot reach the EC2 API: {}", root_cause(&err)),
                Some(AwsFault::Unreachable),
            )
        }
        _ => {
            // No error code to show (an answer that is not EC2's, a proxy's HTML page): one
            // line with the HTTP status and the innermost cause, never the whole answer.
            let shown = status.map(|s| format!("HTTP {s}: ")).unwrap_or_default();
            let cause: String = root_cause(&err)
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .chars()
                .take(200)
                .collect();
            let fault = status
                .filter(|s| *s == 500 || *s == 501)
                .map(AwsFault::NotAws);
            let msg = match (&fault, emulator_limit(action)) {
                (Some(_), Some(limit)) => format!(
                    "{action}: the endpoint answered {shown}no AWS error (not retried): {limit}"
                ),
                (Some(_), None) => format!(
                    "{action}: the endpoint answered {shown}no AWS error (an emulator that does \
                     not implement {action}?; not retried)"
                ),
                (None, _) => {
                    format!("{action}: unexpected answer from the EC2 API: {shown}{cause}")
                }
            };
            (msg, fault)
        }
    };
    let input = code.as_deref().is_some_and(|c| {
        c.starts_with("Invalid") || c.starts_with("Missing") || c.starts_with("Unsupported")
    });
    let detail = msg
        .strip_prefix(action)
        .and_then(|m| m.strip_prefix(": "))
        .unwrap_or(&msg)
        .to_owned();
    let mut e = Error::new(if input { Code::Usage } else { Code::Infra }, msg);
    e.aws = fault.map(|fault| {
        Box::new(AwsFailure {
            action: action.to_owned(),
            fault,
            parameter: refused_parameter(&detail),
            detail,
        })
    });
    e
}

/// The parameter an AWS refusal names (`… for parameter iamInstanceProfile.name is invalid`),
/// read once, where the answer becomes data.
fn refused_parameter(detail: &str) -> Option<String> {
    let (_, rest) = detail.split_once(" for parameter ")?;
    let name = rest
        .split_whitespace()
        .next()?
        .trim_end_matches(['.', ',', ':']);
    (!name.is_empty()).then(|| name.to_owned())
}

/// What plain moto (the emulator users rehearse on) is known not to do, by action: said when
/// such a call gets an answer that is no AWS error.
fn emulator_limit(action: &str) -> Option<&'static str> {
    Some(match action {
        "CreateImage" => {
            "plain moto cannot tag an image's snapshots in CreateImage (AWS can; the local \
             cloud's EC2 front, scripts/localcloud, adds it)"
        }
        "DescribePlacementGroups" | "CreatePlacementGroup" | "DeletePlacementGroup" => {
            "plain moto has no placement groups (AWS has; the local cloud's EC2 front adds them)"
        }
        _ => return None,
    })
}

/// The innermost error's message (`Connection refused (os error 111)`).
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut e = err;
    while let Some(next) = e.source() {
        e = next;
    }
    e.to_string()
}

pub(crate) fn error_code<E: ProvideErrorMetadata>(err: &SdkError<E>) -> Option<&str> {
    err.code()
}

/// How long an instance id fresh from RunInstances may stay unknown to other calls (EC2 is
/// eventually consistent; seconds are common, a minute is the most we wait).
pub const SETTLE: std::time::Duration = std::time::Duration::from_secs(60);

/// How recently launched an instance must be for "not found" to mean "not visible yet"
/// rather than "gone" (SETTLE, plus room for clock skew between us and AWS).
pub const FRESH: std::time::Duration = std::time::Duration::from_secs(300);

/// The error EC2 gives for an id it does not know (yet, or any more).
pub fn not_yet_visible(e: &Error) -> bool {
    e.is_aws(&["InvalidInstanceID.NotFound"])
}

/// How long an instance profile IAM made moments ago may stay unknown to EC2. AWS: "it may
/// take several seconds for the permissions to propagate. If your first attempt to launch an
/// instance with a role fails, wait a few seconds before trying again"; 5-15 s is usual,
/// Terraform's provider waits up to two minutes, so do we.
pub const IAM_PROPAGATION: std::time::Duration = std::time::Duration::from_secs(120);

/// EC2 refusing an instance profile it cannot see (yet: IAM is eventually consistent).
/// AWS gives this no code of its own — `InvalidParameterValue: Value (NAME) for parameter
/// iamInstanceProfile.name is invalid` — only the parameter it refused tells it apart.
pub fn profile_not_visible(e: &Error) -> bool {
    e.is_aws(&["InvalidParameterValue"])
        && e.aws
            .as_ref()
            .and_then(|a| a.parameter.as_deref())
            .is_some_and(|p| p.starts_with("iamInstanceProfile"))
}

/// Instance ids named in an AWS error message (`The instance IDs 'i-1, i-2' do not exist`).
pub fn ids_in_message(msg: &str) -> Vec<String> {
    msg.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|w| is_instance_id(w))
        .map(str::to_owned)
        .collect()
}

/// The ids of the descriptors launched less than [`FRESH`] ago.
pub fn fresh_ids(descs: &[Descriptor]) -> BTreeSet<String> {
    descs
        .iter()
        .filter(|d| d.is_fresh(FRESH))
        .map(|d| d.id.clone())
        .collect()
}

/// Run a deletion until it succeeds, the thing is gone already (`gone` says so of the error
/// code), or `patience` ends while AWS keeps answering `in_use` (a security group, placement
/// group or subnet still held by instances that are terminating): doubling pauses from 2 s to 15 s.
pub(crate) async fn retry_while_in_use<E, F, Fut>(
    patience: std::time::Duration,
    action: &str,
    what: &str,
    in_use: &str,
    gone: impl Fn(&str) -> bool,
    call: F,
) -> crate::error::Result<()>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<(), SdkError<E>>>,
{
    let deadline = tokio::time::Instant::now() + patience;
    let mut pause = std::time::Duration::from_secs(2);
    loop {
        match call().await {
            Ok(()) => return Ok(()),
            Err(e) if error_code(&e).is_some_and(&gone) => return Ok(()),
            Err(e) if error_code(&e) == Some(in_use) && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(std::time::Duration::from_secs(15));
            }
            Err(e) => return Err(aws_error(action, e).context(what)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_found_in_aws_not_found_messages() {
        assert_eq!(
            ids_in_message("The instance IDs 'i-0123abcd, i-0123456789abcdef0' do not exist"),
            vec!["i-0123abcd", "i-0123456789abcdef0"]
        );
        assert_eq!(
            ids_in_message("The instance ID 'i-0123abcd' does not exist"),
            vec!["i-0123abcd"]
        );
    }

    fn aws(code: &str, detail: &str) -> Error {
        let mut e = Error::new(Code::Usage, format!("RunInstances: {detail}"));
        let detail = format!("{code}: {detail}");
        e.aws = Some(Box::new(AwsFailure {
            action: "RunInstances".into(),
            fault: AwsFault::Code(code.into()),
            parameter: refused_parameter(&detail),
            detail,
        }));
        e
    }

    #[test]
    fn only_a_refused_instance_profile_is_one_not_visible_yet() {
        let p = "Value (c1) for parameter iamInstanceProfile.name is invalid. Invalid IAM \
                 Instance Profile name";
        assert!(profile_not_visible(&aws("InvalidParameterValue", p)));
        let arn = "Value (arn:aws:iam::1:instance-profile/c1) for parameter \
                   iamInstanceProfile.arn is invalid";
        assert!(profile_not_visible(&aws("InvalidParameterValue", arn)));
        // Another parameter's bad value is the user's, at once; so is another code.
        let ud = "User data is limited to 16384 bytes";
        assert!(!profile_not_visible(&aws("InvalidParameterValue", ud)));
        assert!(!profile_not_visible(&aws("InvalidAMIID.NotFound", p)));
        assert!(!profile_not_visible(&Error::input("no AWS at all")));
        assert_eq!(
            refused_parameter(&format!("InvalidParameterValue: {p}")).as_deref(),
            Some("iamInstanceProfile.name")
        );
    }
}
