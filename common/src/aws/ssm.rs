//! Systems Manager's Run Command and managed-node calls, one method each: `SendCommand`
//! (`AWS-RunShellScript` to at most 50 ids, or to a tag target), `ListCommandInvocations`
//! (every page, with details), `GetCommandInvocation` (a finished host's inline output),
//! `CancelCommand`, `DescribeInstanceInformation` (who is online). An error that a decision
//! turns on comes back as data ([`Fail`]), never as text to read.
//!
//! What does not belong here: what is sent and what is made of the answers (run_command.rs),
//! the script (remote/ssm_script.rs).

use super::ec2::Ec2;
use super::errors::{aws_error, error_code};
use crate::error::Error;
use aws_sdk_ssm::types::{CommandInvocationStatus, InstanceInformationStringFilter, Target};
use std::collections::BTreeMap;

/// Why a call failed, as far as a caller decides on it.
#[derive(Debug)]
pub enum Fail {
    /// Throttled past the SDK's retries: back off and ask again.
    Throttled(Error),
    /// SendCommand: an instance id that is not a managed node online.
    NotManaged(Error),
    /// GetCommandInvocation: the invocation does not exist (yet: SSM is eventually consistent).
    NoInvocation,
    Other(Error),
}

impl Fail {
    pub fn error(self) -> Error {
        match self {
            Fail::Throttled(e) | Fail::NotManaged(e) | Fail::Other(e) => e,
            Fail::NoInvocation => Error::infra("GetCommandInvocation: InvocationDoesNotExist"),
        }
    }
}

fn fail<E>(action: &str, e: aws_sdk_ssm::error::SdkError<E>) -> Fail
where
    E: aws_sdk_ssm::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    match error_code(&e) {
        Some("ThrottlingException") => Fail::Throttled(aws_error(action, e)),
        Some("InvalidInstanceId") => Fail::NotManaged(aws_error(action, e)),
        Some("InvocationDoesNotExist") => Fail::NoInvocation,
        _ => Fail::Other(aws_error(action, e)),
    }
}

/// Who one SendCommand goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum To {
    /// At most 50 instance ids.
    Ids(Vec<String>),
    /// Every managed node with this tag (key, value).
    Tag(String, String),
}

/// One SendCommand of `AWS-RunShellScript`.
#[derive(Debug, Clone)]
pub struct Send {
    pub to: To,
    pub script: String,
    /// The document's `executionTimeout`: how long the script may run on a host.
    pub execution_s: u64,
    /// `TimeoutSeconds`: how long SSM tries to deliver it to a host.
    pub delivery_s: i32,
    /// `MaxConcurrency`: hosts running it at once (AWS's fan-out).
    pub concurrency: usize,
    /// `OutputS3BucketName` / `OutputS3KeyPrefix`: where the whole output goes.
    pub bucket: Option<(String, String)>,
    pub comment: String,
}

/// One host's invocation as ListCommandInvocations says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub instance_id: String,
    pub status: Status,
    pub details: String,
    pub code: i32,
    /// The plugin's combined output, as listed (stdout, then stderr; cut at 2,500 characters).
    pub listed_output: String,
}

/// An invocation's state, from SSM's statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Running,
    Success,
    Failed,
    TimedOut,
    Cancelled,
}

impl Status {
    pub fn done(self) -> bool {
        self != Status::Running
    }
}

fn status(s: Option<&CommandInvocationStatus>) -> Status {
    match s {
        Some(CommandInvocationStatus::Success) => Status::Success,
        Some(CommandInvocationStatus::Failed) => Status::Failed,
        Some(CommandInvocationStatus::TimedOut) => Status::TimedOut,
        Some(CommandInvocationStatus::Cancelled) => Status::Cancelled,
        _ => Status::Running,
    }
}

/// The Systems Manager client.
pub struct Ssm {
    client: aws_sdk_ssm::Client,
}

impl Ssm {
    /// The client, configured as `ec2` is (region, credentials, endpoint).
    pub fn new(ec2: &Ec2) -> Ssm {
        let conf = aws_sdk_ssm::config::Builder::from(&ec2.sdk)
            .retry_classifier(super::retry::FinalErrors)
            .interceptor(crate::log::AwsCallLog)
            .build();
        Ssm {
            client: aws_sdk_ssm::Client::from_conf(conf),
        }
    }

    /// Send `s`: the command id and how many instances it targets.
    pub async fn send(&self, s: &Send) -> Result<(String, usize), Fail> {
        let mut req = self
            .client
            .send_command()
            .document_name("AWS-RunShellScript")
            .comment(s.comment.chars().take(100).collect::<String>())
            .parameters("commands", vec![s.script.clone()])
            .parameters("executionTimeout", vec![s.execution_s.to_string()])
            .timeout_seconds(s.delivery_s)
            .max_concurrency(s.concurrency.to_string())
            .max_errors("100%");
        req = match &s.to {
            To::Ids(ids) => req.set_instance_ids(Some(ids.clone())),
            To::Tag(k, v) => req.targets(
                Target::builder()
                    .key(format!("tag:{k}"))
                    .values(v.clone())
                    .build(),
            ),
        };
        if let Some((bucket, prefix)) = &s.bucket {
            req = req
                .output_s3_bucket_name(bucket)
                .output_s3_key_prefix(prefix);
        }
        let out = req.send().await.map_err(|e| fail("SendCommand", e))?;
        let c = out
            .command()
            .ok_or_else(|| Fail::Other(Error::infra("SendCommand: no command in the answer")))?;
        Ok((
            c.command_id().unwrap_or_default().to_owned(),
            c.target_count().max(0) as usize,
        ))
    }

    /// Every invocation of `command_id` listed so far (all pages, with details); `calls`
    /// counts the pages asked for.
    pub async fn invocations(
        &self,
        command_id: &str,
        calls: &mut u64,
    ) -> Result<Vec<Invocation>, Fail> {
        let mut all = Vec::new();
        let mut token = None;
        loop {
            *calls += 1;
            let out = self
                .client
                .list_command_invocations()
                .command_id(command_id)
                .details(true)
                .max_results(50)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| fail("ListCommandInvocations", e))?;
            for i in out.command_invocations() {
                let plugin = i.command_plugins().first();
                all.push(Invocation {
                    instance_id: i.instance_id().unwrap_or_default().to_owned(),
                    status: status(i.status()),
                    details: i.status_details().unwrap_or_default().to_owned(),
                    code: plugin.map(|p| p.response_code()).unwrap_or(-1),
                    listed_output: plugin
                        .and_then(|p| p.output())
                        .unwrap_or_default()
                        .to_owned(),
                });
            }
            match out.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_owned()),
                _ => return Ok(all),
            }
        }
    }

    /// A finished invocation's inline output (stdout, stderr), as SSM keeps it.
    pub async fn output(&self, command_id: &str, id: &str) -> Result<(String, String), Fail> {
        let out = self
            .client
            .get_command_invocation()
            .command_id(command_id)
            .instance_id(id)
            .send()
            .await
            .map_err(|e| fail("GetCommandInvocation", e))?;
        Ok((
            out.standard_output_content().unwrap_or_default().to_owned(),
            out.standard_error_content().unwrap_or_default().to_owned(),
        ))
    }

    /// Cancel `command_id` on `ids` (all its instances when empty).
    pub async fn cancel(&self, command_id: &str, ids: &[String]) -> Result<(), Fail> {
        let mut req = self.client.cancel_command().command_id(command_id);
        if !ids.is_empty() {
            req = req.set_instance_ids(Some(ids.to_vec()));
        }
        req.send()
            .await
            .map(|_| ())
            .map_err(|e| fail("CancelCommand", e))
    }

    /// The agents' ping status (`Online`, `ConnectionLost`, …) of those of `ids` that are
    /// managed nodes; an id absent is none (no agent registered, no instance profile).
    pub async fn ping_status(&self, ids: &[String]) -> Result<BTreeMap<String, String>, Fail> {
        let mut found = BTreeMap::new();
        for chunk in ids.chunks(50) {
            let mut token = None;
            loop {
                let out = self
                    .client
                    .describe_instance_information()
                    .filters(
                        InstanceInformationStringFilter::builder()
                            .key("InstanceIds")
                            .set_values(Some(chunk.to_vec()))
                            .build()
                            .map_err(|e| Fail::Other(Error::infra(e.to_string())))?,
                    )
                    .max_results(50)
                    .set_next_token(token.take())
                    .send()
                    .await
                    .map_err(|e| fail("DescribeInstanceInformation", e))?;
                for i in out.instance_information_list() {
                    if let (Some(id), Some(p)) = (i.instance_id(), i.ping_status()) {
                        found.insert(id.to_owned(), p.as_str().to_owned());
                    }
                }
                match out.next_token() {
                    Some(t) if !t.is_empty() => token = Some(t.to_owned()),
                    _ => break,
                }
            }
        }
        Ok(found)
    }
}
