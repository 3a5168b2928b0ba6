//! The rest of a load test's life (issue 10): placement groups made, checked and deleted with
//! the case.

use e2e::Case;
use serde_json::Value;

#[test]
fn placement_cluster_launches_into_a_group_of_the_case_deleted_with_the_last_instance() {
    let c = Case::new();
    let r = c.run(
        "ec2-create",
        &["2", "--placement", "cluster", "--timeout", "60"],
    );
    r.assert_code(0);
    assert!(r.stderr.contains("created cluster placement group"), "{r}");
    let groups: Value = serde_json::from_str(&c.python(&["placements", &c.name()])).unwrap();
    let groups = groups.as_array().unwrap();
    assert_eq!(groups.len(), 1, "{groups:?}");
    assert_eq!(groups[0]["strategy"], "cluster");
    assert_eq!(groups[0]["tags"]["ec2-tools:case"], c.name().as_str());
    let name = groups[0]["name"].as_str().unwrap();
    for d in c.descriptors().keys() {
        let i: Value = serde_json::from_str(&c.python(&["instance", d])).unwrap();
        assert_eq!(i["placement_group"], name, "{i}");
    }
    // More of the same case reuse the group; another strategy is refused before any launch.
    c.run(
        "ec2-create",
        &["3", "--placement", "cluster", "--timeout", "60"],
    )
    .assert_code(0);
    let r = c.run("ec2-create", &["4", "--placement", "spread"]);
    r.assert_code(2);
    assert!(r.stderr.contains("is cluster"), "{r}");
    assert_eq!(c.descriptors().len(), 3, "nothing launched: {r}");

    let r = c.run("ec2-killall", &[]);
    r.assert_code(0);
    assert!(r.stderr.contains("deleted placement group"), "{r}");
    let left: Value = serde_json::from_str(&c.python(&["placements", &c.name()])).unwrap();
    assert_eq!(left.as_array().unwrap().len(), 0, "{left}");
}
