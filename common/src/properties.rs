//! Property tests (proptest) of the three parsers that read what users and other programs
//! write: descriptors, the settings files and environment, and selections. They exist because
//! a parser that panics or loses data on odd input breaks a test case in the middle of a paid
//! run; the example-based tests beside each parser say what the grammar is.
//!
//! `make test` runs each property 256 times; `make fuzz` runs them 100,000 times.

use crate::case::descriptor::{self, Descriptor, InstanceState, SshInfo};
use crate::case::select::{fold_indexes, parse_id_list, parse_indexes};
use crate::settings::{Settings, KEYS};
use proptest::prelude::*;

fn descriptor() -> impl Strategy<Value = Descriptor> {
    let opt = || proptest::option::of("\\PC{0,20}");
    (
        "[0-9a-f]{8}|[0-9a-f]{17}",
        1u32..100_000,
        "[a-zA-Z0-9_.-]{1,30}",
        (opt(), opt(), opt(), opt()),
        (opt(), opt(), opt(), opt()),
        (opt(), proptest::option::of(any::<u16>()), opt()),
        prop_oneof![
            Just(InstanceState::Pending),
            Just(InstanceState::Running),
            Just(InstanceState::Stopped),
            Just(InstanceState::Terminated),
            Just(InstanceState::Static),
        ],
    )
        .prop_map(|(hex, index, case, a, b, ssh, state)| Descriptor {
            id: format!("i-{hex}"),
            index,
            case,
            region: a.0,
            az: a.1,
            instance_type: a.2,
            ami: a.3,
            state: Some(state),
            public_dns: b.0,
            public_ip: b.1,
            private_ip: b.2,
            private_dns: b.3,
            address: None,
            ssh: SshInfo {
                user: ssh.0,
                port: ssh.1,
                host_key: ssh.2,
                host_public_key: None,
                ..SshInfo::default()
            },
            launched_at: None,
            extra: Default::default(),
        })
}

proptest! {
    /// Any text: a descriptor or a one-line error naming the file, never a panic.
    #[test]
    fn descriptor_parser_never_panics_and_names_the_file(text in "\\PC{0,200}") {
        if let Err(e) = descriptor::parse("i-0123abcd", &text) {
            prop_assert!(e.message.starts_with("i-0123abcd: "));
            prop_assert!(!e.message.contains('\n'));
        }
    }

    /// What the tools write, they read back unchanged (unknown keys included).
    #[test]
    fn descriptors_round_trip(mut d in descriptor(), extra in "[a-z_]{1,10}", v in "\\PC{0,20}") {
        d.extra.insert(format!("x_{extra}"), serde_json::Value::from(v));
        let text = serde_json::to_string_pretty(&d).unwrap();
        let back = descriptor::parse(&d.id, &text).unwrap();
        prop_assert_eq!(back, d);
    }

    /// Indexes folded into `1-3,5` parse back to the same set.
    #[test]
    fn index_selections_round_trip(set in proptest::collection::btree_set(1u32..500, 1..40)) {
        let v: Vec<u32> = set.iter().copied().collect();
        prop_assert_eq!(parse_indexes(&fold_indexes(&v)).unwrap(), set);
    }

    /// Any selection text or id list: a value or an error, never a panic.
    #[test]
    fn selection_parsers_never_panic(text in "\\PC{0,80}") {
        let _ = parse_indexes(&text);
        let _ = parse_id_list(&text, "test");
    }

    /// Any settings file and any environment values: settings or an error naming the file or
    /// the variable, never a panic; every key resolves or fails in words.
    #[test]
    fn settings_loader_never_panics(file in "\\PC{0,120}", json_file in proptest::option::of(
        proptest::collection::btree_map("[a-z_]{1,16}", "\\PC{0,12}", 0..6)),
        env_value in "\\PC{0,20}", which in 0usize..KEYS.len())
    {
        let dir = tempfile::tempdir().unwrap();
        let text = match &json_file {
            Some(map) => serde_json::to_string(map).unwrap(),
            None => file.clone(),
        };
        std::fs::write(dir.path().join("ec2-tools.json"), &text).unwrap();
        let env_name = KEYS[which].env.unwrap();
        let loaded = Settings::from_parts(
            dir.path(),
            |k| (k == env_name).then(|| env_value.clone()),
            None,
        );
        match loaded {
            Err(e) => prop_assert!(e.message.contains("ec2-tools.json"), "{}", e.message),
            Ok(s) => {
                let cli = crate::cli::LaunchArgs::default();
                if let Err(e) = cli.resolve(&s) {
                    prop_assert!(!e.message.contains('\n'));
                }
                if let Err(e) = crate::cli::SshArgs::default().resolve(&s) {
                    prop_assert!(!e.message.contains('\n'));
                }
            }
        }
    }
}
