//! Typed errors that carry their exit code.
//!
//! Every tool promises the same exit codes (README "Exit codes"), so the code is decided where
//! the failure is understood — a bad descriptor is bad input (2), an unreachable EC2 endpoint
//! is infrastructure (3) — and `main` only maps it. Messages are one line and name the thing:
//! `i-0abc: descriptor is not valid JSON: …`; the tool name is added by [`crate::tool`].

use std::fmt;

/// What the process exit code says about a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Code {
    /// Everything succeeded.
    Ok,
    /// Some instance or host failed; the others still ran.
    Partial,
    /// Usage, configuration or bad input.
    Usage,
    /// AWS or SSH infrastructure failure, or a timeout.
    Infra,
    /// Interrupted by SIGINT/SIGTERM.
    Interrupted,
}

impl Code {
    /// The process exit code: 0, 1, 2, 3 or 130.
    pub fn as_u8(self) -> u8 {
        match self {
            Code::Ok => 0,
            Code::Partial => 1,
            Code::Usage => 2,
            Code::Infra => 3,
            Code::Interrupted => 130,
        }
    }

    /// The code of a run made of several outcomes: the most severe wins
    /// (interrupted > infrastructure > usage > partial > ok).
    pub fn merge(self, other: Code) -> Code {
        self.max(other)
    }
}

/// An error that ends a tool, with the exit code it stands for.
#[derive(Debug, Clone)]
pub struct Error {
    /// What kind of failure: the exit code a tool ends with.
    pub code: Code,
    /// One line, naming the thing (`i-0abc: descriptor is not valid JSON: …`).
    pub message: String,
    /// What AWS said, as data: the call, its error code (`UnauthorizedOperation`,
    /// `InsufficientInstanceCapacity`) or, for an answer that was no AWS error at all, the
    /// fact. Decisions read this, never the message. Boxed: every `Result` carries an
    /// `Error`, and most errors are not AWS's.
    pub aws: Option<Box<AwsFailure>>,
}

/// A failed AWS call, as data (see [`Error::aws`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsFailure {
    /// The API action (`DescribePlacementGroups`).
    pub action: String,
    /// How it failed.
    pub fault: AwsFault,
    /// What AWS said, one line, without the action (`UnauthorizedOperation: You are not …`).
    pub detail: String,
    /// The parameter AWS refused, when its answer names one (`iamInstanceProfile.name` in
    /// `InvalidParameterValue: Value (…) for parameter iamInstanceProfile.name is invalid`):
    /// several refusals share one code and differ only by it.
    pub parameter: Option<String>,
}

/// How an AWS call failed, as data (see [`Error::aws`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AwsFault {
    /// AWS (or an emulator) answered with an error code.
    Code(String),
    /// The endpoint answered HTTP 5xx with a body that is no AWS error (an emulator's crash
    /// page for a call it does not implement): no retry cures it.
    NotAws(u16),
    /// The endpoint could not be reached, or did not answer in time.
    Unreachable,
}

/// AWS error codes that no retry cures: the call is not allowed, or not known.
pub const FINAL_CODES: &[&str] = &[
    "UnauthorizedOperation",
    "AccessDenied",
    "AccessDeniedException",
    "AuthFailure",
    "InvalidAction",
    "OptInRequired",
    "Blocked",
    "UnsupportedOperation",
];

/// A result whose error carries an exit code.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An error of a given kind.
    pub fn new(code: Code, message: impl Into<String>) -> Error {
        Error {
            code,
            message: message.into(),
            aws: None,
        }
    }

    /// Usage, configuration or bad input (exit 2).
    pub fn input(message: impl Into<String>) -> Error {
        Error::new(Code::Usage, message)
    }

    /// AWS/SSH infrastructure failure or timeout (exit 3).
    pub fn infra(message: impl Into<String>) -> Error {
        Error::new(Code::Infra, message)
    }

    /// Some instances failed, reported already (exit 1).
    pub fn partial(message: impl Into<String>) -> Error {
        Error::new(Code::Partial, message)
    }

    /// Interrupted by a signal (exit 130).
    pub fn interrupted() -> Error {
        Error::new(Code::Interrupted, "interrupted")
    }

    /// The AWS error code this error carries, if any.
    pub fn aws_code(&self) -> Option<&str> {
        match self.aws.as_ref().map(|a| &a.fault) {
            Some(AwsFault::Code(c)) => Some(c),
            _ => None,
        }
    }

    /// True when AWS said one of `codes`.
    pub fn is_aws(&self, codes: &[&str]) -> bool {
        self.aws_code().is_some_and(|c| codes.contains(&c))
    }

    /// True when no retry of the same call can succeed: the call is denied or unknown, or the
    /// endpoint does not implement it.
    pub fn is_final(&self) -> bool {
        matches!(
            self.aws.as_ref().map(|a| &a.fault),
            Some(AwsFault::NotAws(_))
        ) || self.is_aws(FINAL_CODES)
    }

    /// Prefix the message with what was being worked on: `i-0abc: <message>`.
    pub fn context(mut self, what: impl fmt::Display) -> Error {
        self.message = format!("{what}: {}", self.message);
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// Attach context to any error, turning it into an [`Error`] of a given code.
pub(crate) trait ResultExt<T> {
    /// Bad input (exit 2), as `<what>: <error>`.
    fn input_err(self, what: impl fmt::Display) -> Result<T>;
    /// Infrastructure failure (exit 3), as `<what>: <error>`.
    fn infra_err(self, what: impl fmt::Display) -> Result<T>;
}

impl<T, E: fmt::Display> ResultExt<T> for std::result::Result<T, E> {
    fn input_err(self, what: impl fmt::Display) -> Result<T> {
        self.map_err(|e| Error::input(format!("{what}: {e}")))
    }
    fn infra_err(self, what: impl fmt::Display) -> Result<T> {
        self.map_err(|e| Error::infra(format!("{what}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_the_documented_ones() {
        let codes: Vec<u8> = [
            Code::Ok,
            Code::Partial,
            Code::Usage,
            Code::Infra,
            Code::Interrupted,
        ]
        .iter()
        .map(|c| c.as_u8())
        .collect();
        assert_eq!(codes, vec![0, 1, 2, 3, 130]);
    }

    #[test]
    fn merge_keeps_the_most_severe() {
        assert_eq!(Code::Ok.merge(Code::Partial), Code::Partial);
        assert_eq!(Code::Partial.merge(Code::Infra), Code::Infra);
        assert_eq!(Code::Interrupted.merge(Code::Infra), Code::Interrupted);
        assert_eq!(Code::Usage.merge(Code::Ok), Code::Usage);
    }

    #[test]
    fn context_prefixes_the_message() {
        let e = Error::input("descriptor is not valid JSON: eof").context("i-0abc");
        assert_eq!(e.to_string(), "i-0abc: descriptor is not valid JSON: eof");
        assert_eq!(e.code, Code::Usage);
    }
}
