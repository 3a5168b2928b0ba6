//! The least-privilege IAM policy for what the tools call (`ec2-tools iam-policy`), written
//! down once, by feature: launching and ending a case, spot, the case's own network,
//! placement groups, baked images, results in S3, instance profiles. Where AWS evaluates tags,
//! the statements are scoped to what the tools tagged (`ec2-tools:case`): they may stop,
//! terminate and delete only the case's own resources, and tag only at creation or what is
//! theirs already.
//!
//! Pure data; the end-to-end test runs the tour under exactly these actions with the emulator
//! enforcing IAM. What does not belong here: calling AWS.

use serde_json::{json, Value};

/// A part of what the tools do, and the permissions it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Feature {
    /// ec2-create, -exec/-put/-get (nothing of AWS), -status, -stop/-start/-reboot/-revert,
    /// -killall: instances, the case's key pair and security group, images by name, quotas,
    /// prices
    Launch,
    /// --spot
    Spot,
    /// --network auto: a VPC of the case's own
    Network,
    /// --placement
    Placement,
    /// ec2-bake and ec2-killall --images
    Images,
    /// ec2-get s3://… and ec2-report s3://…
    S3,
    /// --iam-profile (iam:PassRole to EC2)
    Profile,
    /// --transport ssm: Run Command, and the case's role and instance profile for it
    Ssm,
}

impl Feature {
    /// Every feature, in order.
    pub const ALL: &[Feature] = &[
        Feature::Launch,
        Feature::Spot,
        Feature::Network,
        Feature::Placement,
        Feature::Images,
        Feature::S3,
        Feature::Profile,
        Feature::Ssm,
    ];
}

const OURS: &str = "aws:ResourceTag/ec2-tools:case";

fn ours() -> Value {
    json!({"StringLike": {OURS: "*"}})
}

/// What launching and ending a case needs.
fn launch() -> Vec<Value> {
    vec![
        json!({"Sid": "Describe", "Effect": "Allow", "Resource": "*", "Action": [
                "ec2:DescribeInstances", "ec2:DescribeInstanceTypes", "ec2:DescribeImages",
                "ec2:DescribeKeyPairs", "ec2:DescribeSecurityGroups", "ec2:DescribeSubnets",
                "ec2:DescribeVpcs", "ec2:DescribeAvailabilityZones",
                "ec2:DescribeSpotPriceHistory", "ec2:DescribePlacementGroups",
                "ec2:DescribeSpotInstanceRequests"]}),
        // RunInstances touches the image, subnet, group, key pair, network interface: only
        // what it creates (the instance, its volumes) must carry the case's tag.
        json!({"Sid": "LaunchTagged", "Effect": "Allow", "Action": "ec2:RunInstances",
                "Resource": ["arn:aws:ec2:*:*:instance/*", "arn:aws:ec2:*:*:volume/*"],
                "Condition": {"StringLike": {"aws:RequestTag/ec2-tools:case": "*"}}}),
        json!({"Sid": "LaunchWith", "Effect": "Allow", "Action": "ec2:RunInstances",
                "Resource": ["arn:aws:ec2:*::image/*", "arn:aws:ec2:*:*:image/*",
                    "arn:aws:ec2:*:*:subnet/*", "arn:aws:ec2:*:*:security-group/*",
                    "arn:aws:ec2:*:*:key-pair/*", "arn:aws:ec2:*:*:network-interface/*",
                    "arn:aws:ec2:*:*:placement-group/*", "arn:aws:ec2:*:*:spot-instances-request/*"]}),
        json!({"Sid": "TagAtCreation", "Effect": "Allow", "Action": "ec2:CreateTags",
                "Resource": "*", "Condition": {"StringEquals": {"ec2:CreateAction": [
                    "RunInstances", "ImportKeyPair", "CreateSecurityGroup", "CreateVpc",
                    "CreateSubnet", "CreateInternetGateway", "CreateRouteTable",
                    "CreatePlacementGroup", "CreateImage"]}}}),
        json!({"Sid": "TagOurs", "Effect": "Allow", "Action": "ec2:CreateTags",
                "Resource": "*", "Condition": ours()}),
        json!({"Sid": "MakeAccess", "Effect": "Allow", "Resource": "*", "Action": [
                "ec2:ImportKeyPair", "ec2:CreateSecurityGroup"],
                "Condition": {"StringLike": {"aws:RequestTag/ec2-tools:case": "*"}}}),
        json!({"Sid": "OnlyOurs", "Effect": "Allow", "Resource": "*", "Action": [
                "ec2:TerminateInstances", "ec2:StopInstances", "ec2:StartInstances",
                "ec2:RebootInstances", "ec2:AuthorizeSecurityGroupIngress",
                "ec2:DeleteSecurityGroup", "ec2:DeleteKeyPair", "ec2:GetConsoleOutput"],
                "Condition": ours()}),
        json!({"Sid": "PublicImageParameters", "Effect": "Allow",
                "Action": ["ssm:GetParameter", "ssm:GetParameters"],
                "Resource": "arn:aws:ssm:*::parameter/aws/service/*"}),
        json!({"Sid": "QuotasAndPrices", "Effect": "Allow", "Resource": "*",
                "Action": ["servicequotas:GetServiceQuota", "pricing:GetProducts"]}),
    ]
}

/// The statements of one feature.
fn statements(f: Feature) -> Vec<Value> {
    match f {
        Feature::Launch => launch(),
        Feature::Spot => vec![
            json!({"Sid": "SpotRequests", "Effect": "Allow", "Resource": "*",
                "Action": "ec2:CancelSpotInstanceRequests", "Condition": ours()}),
            json!({"Sid": "SpotServiceRole", "Effect": "Allow",
                "Action": "iam:CreateServiceLinkedRole", "Resource": "*",
                "Condition": {"StringEquals": {"iam:AWSServiceName": "spot.amazonaws.com"}}}),
        ],
        Feature::Network => vec![
            json!({"Sid": "NetworkDescribe", "Effect": "Allow", "Resource": "*", "Action": [
                "ec2:DescribeRouteTables", "ec2:DescribeInternetGateways"]}),
            json!({"Sid": "NetworkMake", "Effect": "Allow", "Resource": "*", "Action": [
                "ec2:CreateVpc", "ec2:CreateSubnet", "ec2:CreateInternetGateway",
                "ec2:CreateRouteTable"],
                "Condition": {"StringLike": {"aws:RequestTag/ec2-tools:case": "*"}}}),
            json!({"Sid": "NetworkOurs", "Effect": "Allow", "Resource": "*", "Action": [
                "ec2:ModifyVpcAttribute", "ec2:ModifySubnetAttribute",
                "ec2:AttachInternetGateway", "ec2:CreateRoute", "ec2:AssociateRouteTable",
                "ec2:DisassociateRouteTable", "ec2:DetachInternetGateway",
                "ec2:DeleteRouteTable", "ec2:DeleteInternetGateway", "ec2:DeleteSubnet",
                "ec2:DeleteVpc"], "Condition": ours()}),
        ],
        Feature::Placement => vec![
            json!({"Sid": "PlacementMake", "Effect": "Allow", "Resource": "*",
                "Action": "ec2:CreatePlacementGroup",
                "Condition": {"StringLike": {"aws:RequestTag/ec2-tools:case": "*"}}}),
            json!({"Sid": "PlacementOurs", "Effect": "Allow", "Resource": "*",
                "Action": "ec2:DeletePlacementGroup", "Condition": ours()}),
        ],
        Feature::Images => vec![
            json!({"Sid": "Bake", "Effect": "Allow", "Resource": "*", "Action": [
                "ec2:CreateImage"]}),
            json!({"Sid": "BakedOurs", "Effect": "Allow", "Resource": "*", "Action": [
                "ec2:DeregisterImage", "ec2:DeleteSnapshot"], "Condition": ours()}),
        ],
        Feature::S3 => vec![json!({"Sid": "Results", "Effect": "Allow", "Action": [
            "s3:PutObject", "s3:GetObject", "s3:ListBucket", "s3:AbortMultipartUpload"],
            "Resource": ["arn:aws:s3:::YOUR-RESULTS-BUCKET", "arn:aws:s3:::YOUR-RESULTS-BUCKET/*"]})],
        Feature::Profile => vec![json!({"Sid": "PassInstanceProfileRole", "Effect": "Allow",
            "Action": "iam:PassRole", "Resource": "arn:aws:iam::*:role/YOUR-INSTANCE-ROLE",
            "Condition": {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}})],
        Feature::Ssm => ssm(),
    }
}

/// What `--transport ssm` needs: Run Command on the case's instances, the case's role and
/// instance profile under `/ec2-tools/`, and the bucket copies and long output go through.
fn ssm() -> Vec<Value> {
    let role = "arn:aws:iam::*:role/ec2-tools/*";
    let profile = "arn:aws:iam::*:instance-profile/ec2-tools/*";
    vec![
        json!({"Sid": "RunCommandOnOurs", "Effect": "Allow", "Action": "ssm:SendCommand",
            "Resource": "arn:aws:ec2:*:*:instance/*",
            "Condition": {"StringLike": {"ssm:resourceTag/ec2-tools:case": "*"}}}),
        json!({"Sid": "RunShellScript", "Effect": "Allow", "Action": "ssm:SendCommand",
            "Resource": "arn:aws:ssm:*:*:document/AWS-RunShellScript"}),
        json!({"Sid": "FollowCommands", "Effect": "Allow", "Resource": "*", "Action": [
            "ssm:ListCommandInvocations", "ssm:GetCommandInvocation", "ssm:CancelCommand",
            "ssm:DescribeInstanceInformation"]}),
        json!({"Sid": "CaseRole", "Effect": "Allow", "Resource": [role, profile], "Action": [
            "iam:CreateRole", "iam:TagRole", "iam:GetRole", "iam:CreateInstanceProfile",
            "iam:TagInstanceProfile", "iam:GetInstanceProfile", "iam:AddRoleToInstanceProfile",
            "iam:ListAttachedRolePolicies", "iam:ListRoleTags"]}),
        json!({"Sid": "CaseRoleSsmPolicyOnly", "Effect": "Allow", "Resource": role,
            "Action": "iam:AttachRolePolicy",
            "Condition": {"ArnEquals": {"iam:PolicyARN":
                "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"}}}),
        json!({"Sid": "ListCaseRoles", "Effect": "Allow", "Action": "iam:ListRoles",
            "Resource": "*"}),
        json!({"Sid": "RemoveCaseRole", "Effect": "Allow", "Resource": [role, profile], "Action": [
            "iam:RemoveRoleFromInstanceProfile", "iam:DeleteInstanceProfile",
            "iam:DetachRolePolicy", "iam:DeleteRole"],
            "Condition": {"StringLike": {"iam:ResourceTag/ec2-tools:case": "*"}}}),
        json!({"Sid": "PassCaseRole", "Effect": "Allow", "Action": "iam:PassRole",
            "Resource": role,
            "Condition": {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}}),
        // Only the tools' own prefix: every object they write (copies, fetched data, SSM's
        // output) is under `ec2-tools/<case>/`.
        json!({"Sid": "SsmBucket", "Effect": "Allow", "Action": [
            "s3:PutObject", "s3:GetObject", "s3:DeleteObject"],
            "Resource": "arn:aws:s3:::YOUR-SSM-BUCKET/ec2-tools/*"}),
        json!({"Sid": "SsmBucketCheck", "Effect": "Allow", "Action": "s3:ListBucket",
            "Resource": "arn:aws:s3:::YOUR-SSM-BUCKET"}),
    ]
}

/// The policy document for `features` (all of them when empty).
pub fn document(features: &[Feature]) -> Value {
    let mut wanted: Vec<Feature> = if features.is_empty() {
        Feature::ALL.to_vec()
    } else {
        features.to_vec()
    };
    wanted.sort();
    wanted.dedup();
    if !wanted.contains(&Feature::Launch) {
        wanted.insert(0, Feature::Launch); // every other feature is about a case's launch
    }
    let statement: Vec<Value> = wanted.into_iter().flat_map(statements).collect();
    json!({"Version": "2012-10-17", "Statement": statement})
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every action a policy document allows (its statements' `Action`s).
    fn actions(doc: &Value) -> Vec<String> {
        let mut out: Vec<String> = doc["Statement"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|s| match &s["Action"] {
                Value::String(a) => vec![a.clone()],
                Value::Array(a) => a
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect(),
                _ => vec![],
            })
            .collect();
        out.sort();
        out.dedup();
        out
    }

    #[test]
    fn the_policy_covers_every_action_the_tools_name_and_scopes_changes_to_the_case() {
        let doc = document(&[]);
        let all = actions(&doc);
        // The actions the code calls, as its errors name them (checked by grep in the
        // end-to-end test too): each must be in the policy.
        for a in [
            "ec2:RunInstances",
            "ec2:TerminateInstances",
            "ec2:CreateTags",
            "ec2:ImportKeyPair",
            "ec2:DeleteKeyPair",
            "ec2:CreateSecurityGroup",
            "ec2:DeleteSecurityGroup",
            "ec2:AuthorizeSecurityGroupIngress",
            "ec2:DescribeInstanceTypes",
            "ec2:DescribeSpotPriceHistory",
            "ec2:GetConsoleOutput",
            "ssm:GetParameter",
            "servicequotas:GetServiceQuota",
            "pricing:GetProducts",
            "ec2:CreateVpc",
            "ec2:DeleteVpc",
            "ec2:CreatePlacementGroup",
            "ec2:CreateImage",
            "ec2:DeleteSnapshot",
            "s3:PutObject",
            "iam:PassRole",
            "ssm:SendCommand",
            "ssm:ListCommandInvocations",
            "ssm:GetCommandInvocation",
            "ssm:CancelCommand",
            "ssm:DescribeInstanceInformation",
            "iam:CreateRole",
            "iam:CreateInstanceProfile",
            "iam:DeleteRole",
            "iam:DeleteInstanceProfile",
        ] {
            assert!(all.contains(&a.to_owned()), "{a}");
        }
        // Every statement that ends or changes something is scoped to the case's tag, or (S3
        // objects, which carry no tags the tools set) to the tools' own prefix.
        for s in doc["Statement"].as_array().unwrap() {
            let acts = actions(&json!({"Statement": [s]}));
            if acts
                .iter()
                .any(|a| a.contains("Terminate") || a.contains(":Delete"))
            {
                let own_prefix = s["Resource"]
                    .as_str()
                    .is_some_and(|r| r.starts_with("arn:aws:s3:::") && r.contains("/ec2-tools/"));
                assert!(s.get("Condition").is_some() || own_prefix, "{s}");
            }
        }
        // A narrower policy still lets a case launch and end.
        let s3 = actions(&document(&[Feature::S3]));
        assert!(s3.contains(&"ec2:RunInstances".to_owned()));
        assert!(!s3.contains(&"ec2:CreateVpc".to_owned()));
    }
}
