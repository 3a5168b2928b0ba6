//! What AWS names publicly, as data the tools decide with before any call: the image aliases
//! (`ubuntu`, `al2023`, …) and the public SSM parameters they stand for, with the login user
//! each image has; an instance type's architecture when DescribeInstanceTypes may not be
//! asked; which running-instance vCPU quota a type counts against; the regions that exist.
//!
//! Pure and small, so that config.rs can parse with it and aws/ can resolve with it. What does
//! not belong here: asking AWS anything (aws/lookup.rs does), prices (never written down: they
//! are asked for, or said to be unknown).

/// An image to launch, as the `ami` setting gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AmiSpec {
    /// An AMI id (`ami-0abc…`): launched as it is.
    Id(String),
    /// One of [`ALIASES`], by its index there.
    Alias(usize),
    /// `resolve:ssm:/a/parameter`: the AMI id that public (or the account's) parameter holds.
    Parameter(String),
}

/// An alias: its name, the login user of its images, and the SSM parameter holding the
/// latest AMI id for each architecture (x86_64, arm64).
pub struct Alias {
    pub name: &'static str,
    pub user: &'static str,
    pub x86_64: &'static str,
    pub arm64: &'static str,
}

const UBUNTU_2404: (&str, &str) = (
    "/aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id",
    "/aws/service/canonical/ubuntu/server/24.04/stable/current/arm64/hvm/ebs-gp3/ami-id",
);

/// The aliases, the first being the default (`ubuntu`: the latest Ubuntu LTS).
pub const ALIASES: &[Alias] = &[
    Alias {
        name: "ubuntu",
        user: "ubuntu",
        x86_64: UBUNTU_2404.0,
        arm64: UBUNTU_2404.1,
    },
    Alias {
        name: "ubuntu-24.04",
        user: "ubuntu",
        x86_64: UBUNTU_2404.0,
        arm64: UBUNTU_2404.1,
    },
    Alias {
        name: "ubuntu-22.04",
        user: "ubuntu",
        x86_64:
            "/aws/service/canonical/ubuntu/server/22.04/stable/current/amd64/hvm/ebs-gp2/ami-id",
        arm64: "/aws/service/canonical/ubuntu/server/22.04/stable/current/arm64/hvm/ebs-gp2/ami-id",
    },
    Alias {
        name: "al2023",
        user: "ec2-user",
        x86_64: "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64",
        arm64: "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64",
    },
    Alias {
        name: "debian-12",
        user: "admin",
        x86_64: "/aws/service/debian/release/12/latest/amd64",
        arm64: "/aws/service/debian/release/12/latest/arm64",
    },
];

/// The `ami` setting's default: the first alias.
pub const DEFAULT_AMI: &str = "ubuntu";

impl AmiSpec {
    /// `ami-…`, an alias, or `resolve:ssm:/parameter` (the form RunInstances itself takes).
    pub fn parse(s: &str) -> Result<AmiSpec, String> {
        if let Some(hex) = s.strip_prefix("ami-") {
            if (hex.len() == 8 || hex.len() == 17) && hex.chars().all(|c| c.is_ascii_hexdigit()) {
                return Ok(AmiSpec::Id(s.to_owned()));
            }
            return Err(format!("{s:?}: an AMI id is ami- and 8 or 17 hex digits"));
        }
        if let Some(p) = s.strip_prefix("resolve:ssm:") {
            if p.starts_with('/') && p.len() > 1 {
                return Ok(AmiSpec::Parameter(p.to_owned()));
            }
            return Err(format!("{s:?}: expected resolve:ssm:/parameter/name"));
        }
        match ALIASES.iter().position(|a| a.name == s) {
            Some(i) => Ok(AmiSpec::Alias(i)),
            None => Err(format!(
                "{s:?}: expected an AMI id (ami-…), resolve:ssm:/parameter/name or one of {}",
                ALIASES
                    .iter()
                    .map(|a| a.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }

    /// The SSM parameter holding the AMI id for `arch` (`None`: an id, nothing to resolve).
    pub fn parameter(&self, arch: &str) -> Option<&str> {
        match self {
            AmiSpec::Id(_) => None,
            AmiSpec::Parameter(p) => Some(p),
            AmiSpec::Alias(i) => Some(if arch == "arm64" {
                ALIASES[*i].arm64
            } else {
                ALIASES[*i].x86_64
            }),
        }
    }

    /// The login user its images have, when the name says: an alias's, or a public
    /// parameter's publisher's (Canonical: ubuntu, Amazon: ec2-user, Debian: admin).
    pub fn login_user(&self) -> Option<&'static str> {
        match self {
            AmiSpec::Id(_) => None,
            AmiSpec::Alias(i) => Some(ALIASES[*i].user),
            AmiSpec::Parameter(p) => [
                ("/aws/service/canonical/", "ubuntu"),
                ("/aws/service/ami-amazon-linux-latest/", "ec2-user"),
                ("/aws/service/debian/", "admin"),
            ]
            .iter()
            .find(|(prefix, _)| p.starts_with(prefix))
            .map(|(_, u)| *u),
        }
    }
}

impl std::fmt::Display for AmiSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AmiSpec::Id(id) => f.write_str(id),
            AmiSpec::Alias(i) => f.write_str(ALIASES[*i].name),
            AmiSpec::Parameter(p) => write!(f, "resolve:ssm:{p}"),
        }
    }
}

/// An instance family's parts: `c7gn` → (`c`, `7`, `gn`).
fn family_parts(instance_type: &str) -> (&str, &str, &str) {
    let family = instance_type.split('.').next().unwrap_or_default();
    let digit = family
        .find(|c: char| c.is_ascii_digit())
        .unwrap_or(family.len());
    let rest = &family[digit..];
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    (&family[..digit], &rest[..end], &rest[end..])
}

/// The architecture a type's name says (Graviton: `a1`, and a `g` after the generation, as in
/// t4g, c7gn, r8g, is4gen, g5g): arm64, else x86_64. For when DescribeInstanceTypes is denied.
pub fn arch_by_name(instance_type: &str) -> &'static str {
    let (prefix, generation, suffix) = family_parts(instance_type);
    if (prefix == "a" && generation == "1") || suffix.contains('g') {
        "arm64"
    } else {
        "x86_64"
    }
}

/// The running-instances vCPU quota a type counts against, by market: (quota code, its name).
/// AWS groups families by their first letters; `None`: a family this table does not know
/// (the check is then skipped, with a note).
pub fn vcpu_quota(instance_type: &str, spot: bool) -> Option<(&'static str, &'static str)> {
    let (prefix, _, _) = family_parts(instance_type);
    let group = match prefix {
        "a" | "c" | "d" | "h" | "i" | "m" | "r" | "t" | "z" | "im" | "is" | "hpc" => 'S',
        "g" | "vt" => 'G',
        "p" | "dl" | "trn" => 'P',
        "f" => 'F',
        "x" | "u" => 'X',
        "inf" => 'I',
        _ => return None,
    };
    Some(match (group, spot) {
        ('S', false) => (
            "L-1216C47A",
            "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances",
        ),
        ('S', true) => (
            "L-34B43A08",
            "All Standard (A, C, D, H, I, M, R, T, Z) Spot Instance Requests",
        ),
        ('G', false) => ("L-DB2E81BA", "Running On-Demand G and VT instances"),
        ('G', true) => ("L-3819A6DF", "All G and VT Spot Instance Requests"),
        ('P', false) => ("L-417A185B", "Running On-Demand P instances"),
        ('P', true) => ("L-7212CCBC", "All P4, P3 and P2 Spot Instance Requests"),
        ('F', false) => ("L-1945791B", "Running On-Demand F instances"),
        ('F', true) => ("L-88CF9481", "All F Spot Instance Requests"),
        ('X', false) => ("L-7295265B", "Running On-Demand X instances"),
        ('X', true) => ("L-E3A00192", "All X Spot Instance Requests"),
        ('I', false) => ("L-1740F5E6", "Running On-Demand Inf instances"),
        _ => ("L-B5D1601B", "All Inf Spot Instance Requests"),
    })
}

/// The regions AWS has (commercial, China, GovCloud), as of this release.
pub const REGIONS: &[&str] = &[
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-south-1",
    "ap-south-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-6",
    "ap-southeast-7",
    "ca-central-1",
    "ca-west-1",
    "eu-central-1",
    "eu-central-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eu-south-1",
    "eu-south-2",
    "eu-north-1",
    "il-central-1",
    "me-south-1",
    "me-central-1",
    "mx-central-1",
    "sa-east-1",
    "cn-north-1",
    "cn-northwest-1",
    "us-gov-east-1",
    "us-gov-west-1",
];

/// The known region nearest to `name` by edit distance (a transposition counts one).
pub fn nearest_region(name: &str) -> &'static str {
    REGIONS
        .iter()
        .min_by_key(|r| edit_distance(name, r))
        .copied()
        .unwrap_or("us-east-1")
}

/// Optimal-string-alignment distance: insertions, deletions, substitutions and adjacent
/// transpositions count one each.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ami_forms_parse_and_name_what_they_resolve_through() {
        let u = AmiSpec::parse("ubuntu").unwrap();
        assert_eq!(u.to_string(), "ubuntu");
        assert_eq!(u.login_user(), Some("ubuntu"));
        assert!(u
            .parameter("arm64")
            .unwrap()
            .contains("/24.04/stable/current/arm64/"));
        assert!(u.parameter("x86_64").unwrap().contains("/amd64/"));
        let al = AmiSpec::parse("al2023").unwrap();
        assert_eq!(al.login_user(), Some("ec2-user"));
        assert!(al
            .parameter("arm64")
            .unwrap()
            .ends_with("kernel-default-arm64"));
        assert_eq!(
            AmiSpec::parse("debian-12").unwrap().login_user(),
            Some("admin")
        );
        let id = AmiSpec::parse("ami-0123456789abcdef0").unwrap();
        assert_eq!((id.parameter("x86_64"), id.login_user()), (None, None));
        assert!(AmiSpec::parse("ami-12345678").is_ok());
        let p = AmiSpec::parse("resolve:ssm:/aws/service/debian/release/13/latest/amd64").unwrap();
        assert_eq!(p.login_user(), Some("admin"));
        assert_eq!(
            p.parameter("arm64"),
            Some("/aws/service/debian/release/13/latest/amd64")
        );
        assert_eq!(
            AmiSpec::parse("resolve:ssm:/mine/ami")
                .unwrap()
                .login_user(),
            None
        );
        for bad in [
            "banana",
            "ami-xyz",
            "ami-0123",
            "resolve:ssm:",
            "resolve:ssm:rel",
            "",
        ] {
            assert!(AmiSpec::parse(bad).is_err(), "{bad}");
        }
        assert!(AmiSpec::parse("ubuntu-20.04")
            .unwrap_err()
            .contains("ubuntu-22.04"));
        assert_eq!(AmiSpec::parse(DEFAULT_AMI).unwrap(), AmiSpec::Alias(0));
    }

    #[test]
    fn graviton_types_are_arm64_by_name() {
        for t in [
            "c7g.large",
            "t4g.micro",
            "c7gn.xlarge",
            "r8g.large",
            "a1.medium",
            "is4gen.large",
            "g5g.xlarge",
            "m6gd.large",
        ] {
            assert_eq!(arch_by_name(t), "arm64", "{t}");
        }
        for t in [
            "t3.micro",
            "c5.large",
            "m7i.large",
            "g4dn.xlarge",
            "inf2.xlarge",
            "c6in.large",
            "m7a.large",
        ] {
            assert_eq!(arch_by_name(t), "x86_64", "{t}");
        }
    }

    #[test]
    fn types_count_against_their_familys_vcpu_quota() {
        assert_eq!(vcpu_quota("t3.micro", false).unwrap().0, "L-1216C47A");
        assert_eq!(vcpu_quota("c7gn.large", true).unwrap().0, "L-34B43A08");
        assert_eq!(vcpu_quota("g5.xlarge", false).unwrap().0, "L-DB2E81BA");
        assert_eq!(vcpu_quota("p4d.24xlarge", false).unwrap().0, "L-417A185B");
        assert_eq!(vcpu_quota("im4gn.large", false).unwrap().0, "L-1216C47A");
        assert_eq!(vcpu_quota("mac2.metal", false), None);
    }

    #[test]
    fn a_misspelt_region_is_near_the_real_one() {
        assert_eq!(nearest_region("eu-wset-1"), "eu-west-1");
        assert_eq!(nearest_region("us-east1"), "us-east-1");
        assert_eq!(nearest_region("ap-southeast-9"), "ap-southeast-1");
        assert!(REGIONS.contains(&"eu-west-1"));
    }
}
