//! What ec2-killall could not remove, as data: the kind, the action, what AWS said, and the
//! AWS CLI line that removes it by hand. The cleanup itself (what to list, what to delete,
//! in which order) is the parent module's; this one only records and words what was left.

use crate::aws::ec2::{TAG_CASE, TAG_OWNER};
use crate::config::Config;
use crate::error::Error;

/// The kinds of resource the cleanup handles, each on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// EC2 instances.
    Instances,
    /// Spot instance requests.
    SpotRequests,
    /// Security groups.
    SecurityGroups,
    /// Key pairs.
    KeyPairs,
    /// Placement groups.
    PlacementGroups,
    /// VPCs with their subnets, route table and internet gateway (`--network auto`).
    Networks,
    /// Baked images and their snapshots (`--images`).
    Images,
    /// The IAM role and instance profile made for SSM (`--transport ssm`).
    InstanceProfiles,
}

impl Kind {
    /// As said in reports: `security groups`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Instances => "instances",
            Kind::SpotRequests => "spot requests",
            Kind::SecurityGroups => "security groups",
            Kind::KeyPairs => "key pairs",
            Kind::PlacementGroups => "placement groups",
            Kind::Networks => "networks",
            Kind::Images => "images",
            Kind::InstanceProfiles => "instance profiles",
        }
    }

    /// One of them: `security group`.
    pub(super) fn one(self) -> &'static str {
        match self {
            Kind::Instances => "instance",
            Kind::SpotRequests => "spot request",
            Kind::SecurityGroups => "security group",
            Kind::KeyPairs => "key pair",
            Kind::PlacementGroups => "placement group",
            Kind::Networks => "network",
            Kind::Images => "image",
            Kind::InstanceProfiles => "instance profile",
        }
    }

    /// The AWS CLI subcommand that lists this kind.
    fn describe(self) -> &'static str {
        match self {
            Kind::Instances => "describe-instances",
            Kind::SpotRequests => "describe-spot-instance-requests",
            Kind::SecurityGroups => "describe-security-groups",
            Kind::KeyPairs => "describe-key-pairs",
            Kind::PlacementGroups => "describe-placement-groups",
            Kind::Networks => "describe-vpcs",
            Kind::Images => "describe-images --owners self",
            Kind::InstanceProfiles => "iam list-instance-profiles --path-prefix /ec2-tools/",
        }
    }
}

/// One thing the cleanup could not do: which kind, which action, what AWS said, and the AWS
/// CLI line that does it by hand.
#[derive(Debug, Clone)]
pub struct Leftover {
    /// The kind of resource left.
    pub kind: Kind,
    /// What failed (`DescribePlacementGroups`, `DeleteSecurityGroup sg-0abc`).
    pub action: String,
    /// The error, one line.
    pub error: String,
    /// How to finish by hand.
    pub by_hand: String,
}

impl std::fmt::Display for Leftover {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} left: {}: {}; by hand: {}",
            self.kind.as_str(),
            self.action,
            self.error,
            self.by_hand
        )
    }
}

/// The AWS CLI's `--region R --filters` for the case's tags, shell-quoted.
pub(super) fn cli_filters(cfg: &Config, region: &str, owner: &str) -> String {
    format!(
        "--region {} --filters {} {}",
        quote(region),
        quote(&format!("Name=tag:{TAG_CASE},Values={}", cfg.case)),
        quote(&format!("Name=tag:{TAG_OWNER},Values={owner}"))
    )
}

/// A word for the shell (single-quoted unless plainly safe).
pub(super) fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:/=,@+".contains(c))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The cleanup's record of what it could not do.
pub(super) struct Report<'a> {
    pub(super) cfg: &'a Config,
    pub(super) region: String,
    pub(super) owner: String,
    pub(super) left: Vec<Leftover>,
}

impl<'a> Report<'a> {
    /// Nothing left behind yet.
    pub(super) fn new(cfg: &'a Config, region: &str, owner: &str) -> Report<'a> {
        Report {
            cfg,
            region: region.to_owned(),
            owner: owner.to_owned(),
            left: vec![],
        }
    }

    /// A kind that could not be listed: the AWS CLI line that lists it.
    pub(super) fn unlisted(&mut self, kind: Kind, e: &Error) {
        let by_hand = format!(
            "aws ec2 {} {}",
            kind.describe(),
            cli_filters(self.cfg, &self.region, &self.owner)
        );
        self.push(kind, e, "", by_hand);
    }

    /// One resource that could not be deleted: the AWS CLI line that deletes it.
    pub(super) fn undeleted(&mut self, kind: Kind, e: &Error, resource: &str, by_hand: String) {
        self.push(kind, e, resource, by_hand);
    }

    fn push(&mut self, kind: Kind, e: &Error, resource: &str, by_hand: String) {
        let (action, error) = match &e.aws {
            Some(a) => (a.action.clone(), a.detail.clone()),
            None => ("-".to_owned(), e.message.clone()),
        };
        let action = if resource.is_empty() {
            action
        } else {
            format!("{action} {resource}")
        };
        self.left.push(Leftover {
            kind,
            action,
            error: error.trim_end_matches('.').to_owned(),
            by_hand,
        });
    }
}

pub(super) fn delete_group_line(region: &str, id: &str) -> String {
    format!(
        "aws ec2 delete-security-group --region {} --group-id {id}",
        quote(region)
    )
}

/// IAM's order: the role out of the profile, the profile, the policy off the role, the role.
pub(super) fn delete_profile_line(name: &str) -> String {
    let n = quote(name);
    format!(
        "aws iam remove-role-from-instance-profile --instance-profile-name {n} --role-name {n} && \
         aws iam delete-instance-profile --instance-profile-name {n} && aws iam detach-role-policy \
         --role-name {n} --policy-arn arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore && \
         aws iam delete-role --role-name {n}"
    )
}

pub(super) fn delete_key_line(region: &str, name: &str) -> String {
    format!(
        "aws ec2 delete-key-pair --region {} --key-name {}",
        quote(region),
        quote(name)
    )
}

pub(super) fn delete_placement_line(region: &str, name: &str) -> String {
    format!(
        "aws ec2 delete-placement-group --region {} --group-name {}",
        quote(region),
        quote(name)
    )
}

pub(super) fn delete_network_line(region: &str, vpc: &str) -> String {
    format!(
        "aws ec2 delete-vpc --region {} --vpc-id {vpc} (after its subnets, route table and \
         internet gateway: aws ec2 describe-subnets --filters Name=vpc-id,Values={vpc})",
        quote(region)
    )
}

/// A key pair kept because the case's instances cannot be listed: one may still need it.
pub(super) fn kept_key(region: &str, name: &str) -> Leftover {
    Leftover {
        kind: Kind::KeyPairs,
        action: format!("DeleteKeyPair {name}"),
        error: "kept: the case's instances cannot be listed, and one may still need it".into(),
        by_hand: delete_key_line(region, name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_hand_lines_quote_what_the_shell_would_split() {
        assert_eq!(quote("us-east-1"), "us-east-1");
        assert_eq!(
            quote("Name=tag:ec2-tools:owner,Values=me@host"),
            "Name=tag:ec2-tools:owner,Values=me@host"
        );
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn a_leftover_is_one_line_naming_the_kind_the_action_and_the_error() {
        let l = Leftover {
            kind: Kind::PlacementGroups,
            action: "DescribePlacementGroups".into(),
            error: "UnauthorizedOperation: You are not authorized".into(),
            by_hand: "aws ec2 describe-placement-groups".into(),
        };
        let s = l.to_string();
        assert!(!s.contains('\n'));
        assert!(
            s.starts_with("placement groups left: DescribePlacementGroups: UnauthorizedOperation"),
            "{s}"
        );
    }
}
