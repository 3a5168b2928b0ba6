//! What a launch is checked against before anything is made, and the images it runs: an
//! AMI id, or an alias or parameter resolved through SSM for each instance type's
//! architecture (DescribeInstanceTypes; read off the type's name when that is denied); an
//! image that does not fit a type, or a root volume smaller than its snapshot, is bad input
//! naming both. What does not belong here: the quota and cost checks (quota.rs, cost.rs), the
//! launch itself (fleet.rs).

use super::ec2::{Ec2, Image, TypeInfo};
use crate::config::LaunchConfig;
use crate::error::{Error, Result};
use crate::output;
use std::collections::BTreeMap;

/// The image each instance type of a launch runs: the AMI id given, or what the alias or
/// parameter resolved to for the type's architecture.
#[derive(Debug, Clone, Default)]
pub struct Images {
    by_type: BTreeMap<String, Image>,
}

impl Images {
    pub(super) fn for_type(&self, instance_type: &str) -> Result<&Image> {
        self.by_type
            .get(instance_type)
            .ok_or_else(|| Error::infra(format!("--type {instance_type}: no image resolved")))
    }

    /// The name of image `id`, if it is one of these.
    pub(super) fn name_of(&self, id: &str) -> Option<&str> {
        self.by_type
            .values()
            .find(|i| i.id == id)
            .and_then(|i| i.name.as_deref())
    }
}

/// Why an AMI of `arch` cannot run on one of the types (`archs`: each type's supported
/// architectures), naming both; `None` when every type fits or the AMI's is unknown.
fn arch_mismatch(
    ami: &str,
    arch: Option<&str>,
    archs: &std::collections::BTreeMap<String, Vec<String>>,
) -> Option<String> {
    let arch = arch?;
    let (t, supported) = archs
        .iter()
        .find(|(_, a)| !a.is_empty() && !a.iter().any(|x| x == arch))?;
    Some(format!(
        "--type {t} runs {}, but the AMI {ami} is {arch}: choose an {} AMI (an alias such as \
         --ami ubuntu picks it for the type) or an {arch} type",
        supported.join("/"),
        supported[0],
    ))
}

/// The architecture an image is chosen for: x86_64 where a type runs both, else the one AWS
/// said, else the one its name says.
fn preferred_arch(instance_type: &str, supported: &[String]) -> &'static str {
    if supported.iter().any(|a| a == "x86_64") {
        "x86_64"
    } else if supported.iter().any(|a| a == "arm64") {
        "arm64"
    } else {
        crate::catalog::arch_by_name(instance_type)
    }
}

/// The checks, on one EC2 client (the fleet's).
pub(super) struct Preflight<'a> {
    pub(super) ec2: &'a Ec2,
}

impl Preflight<'_> {
    /// What AWS would refuse at RunInstances, found before anything is made: an AMI that
    /// is not there, a root volume smaller than its snapshot, an instance type that does not
    /// exist or does not fit the AMI's architecture. An alias or parameter is resolved here,
    /// for each type's architecture, and said once. Without permission to describe instance
    /// types (a least-privilege account), a type's architecture is read off its name and
    /// not checked, with a note: RunInstances still refuses what is wrong.
    pub(super) async fn check_launch(
        &self,
        config: &LaunchConfig,
    ) -> Result<(Images, BTreeMap<String, TypeInfo>)> {
        let (types, known) = self.launch_types(&config.instance_types).await?;
        let lookup = super::lookup::Lookup::new(self.ec2);
        let mut by_arch: BTreeMap<&str, Image> = Default::default();
        let mut images = Images::default();
        for t in &config.instance_types {
            let supported = types.get(t).map(|i| i.archs.clone()).unwrap_or_default();
            let arch = preferred_arch(t, &supported);
            if !by_arch.contains_key(arch) {
                let image = self.resolve_image(&lookup, &config.ami, arch).await?;
                by_arch.insert(arch, image);
            }
            let image = by_arch[arch].clone();
            let one = BTreeMap::from([(t.clone(), supported)]);
            if let Some(why) =
                arch_mismatch(&image.id, image.architecture.as_deref(), &one).filter(|_| known)
            {
                return Err(Error::input(why));
            }
            let snapshot = image.root.as_ref().and_then(|r| r.size_gb);
            if let (Some(want), Some(has)) = (config.instance.volume_size, snapshot) {
                if want < has {
                    return Err(Error::input(format!(
                        "--volume-size {want}: the AMI's root snapshot is {has} GB (the volume holds it)"
                    )));
                }
            }
            images.by_type.insert(t.clone(), image);
        }
        Ok((images, types))
    }

    /// Each type as DescribeInstanceTypes has it, and whether AWS said; without permission,
    /// the architecture read off the name ([`crate::catalog::arch_by_name`]), with a note.
    async fn launch_types(&self, types: &[String]) -> Result<(BTreeMap<String, TypeInfo>, bool)> {
        match self.ec2.instance_types(types).await {
            Ok(found) => Ok((found, true)),
            Err(e) if e.is_final() => {
                output::note(format!(
                    "{e}: the instance types' architectures are read off their names, not checked"
                ));
                let guess = |t: &String| TypeInfo {
                    archs: vec![crate::catalog::arch_by_name(t).to_owned()],
                    vcpus: None,
                };
                Ok((types.iter().map(|t| (t.clone(), guess(t))).collect(), false))
            }
            Err(e) => Err(e),
        }
    }

    /// The image `spec` names for `arch`: an id as it is, an alias or parameter through SSM
    /// (said once: `--ami ubuntu (x86_64): ami-… ubuntu/images/…`); checked to exist.
    async fn resolve_image(
        &self,
        lookup: &super::lookup::Lookup,
        spec: &crate::config::AmiSpec,
        arch: &str,
    ) -> Result<Image> {
        let Some(parameter) = spec.parameter(arch) else {
            return self.ec2.check_image(&spec.to_string()).await;
        };
        let what = format!("--ami {spec} ({arch})");
        let id = lookup
            .parameter(parameter)
            .await
            .map_err(|e| e.context(&what))?;
        let image = self
            .ec2
            .check_image(&id)
            .await
            .map_err(|e| e.context(&what))?;
        output::note(format!(
            "{what}: {id} {}",
            image.name.as_deref().unwrap_or("(no name)")
        ));
        Ok(image)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ami_that_does_not_fit_a_type_is_named_with_both_architectures() {
        let archs: std::collections::BTreeMap<String, Vec<String>> = [
            ("t3.micro".to_owned(), vec!["x86_64".to_owned()]),
            ("c7g.large".to_owned(), vec!["arm64".to_owned()]),
        ]
        .into_iter()
        .collect();
        let why = arch_mismatch("ami-1", Some("x86_64"), &archs).unwrap();
        assert!(why.starts_with("--type c7g.large runs arm64"), "{why}");
        assert!(why.contains("the AMI ami-1 is x86_64"), "{why}");
        assert!(arch_mismatch("ami-1", Some("arm64"), &archs).is_some());
        let x86_only = [("t3.micro".to_owned(), vec!["x86_64".to_owned()])].into();
        assert_eq!(arch_mismatch("ami-1", Some("x86_64"), &x86_only), None);
        assert_eq!(arch_mismatch("ami-1", None, &archs), None);
    }
}
