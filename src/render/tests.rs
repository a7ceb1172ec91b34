//! Rendered plans, snapshot-tested: for people, as Markdown, as the JSON document.

use std::collections::BTreeMap;

use super::*;
use crate::graph::NodeKind;
use crate::plan::Attribute;

fn change(action: Action, node: &str, live: Option<&str>) -> Change {
    Change {
        stack: "demo".into(),
        node: node.into(),
        kind: if node.starts_with("snapshot/") { NodeKind::Snapshot } else { NodeKind::Image },
        region: node.rsplit_once('@').map(|(_, region)| region.to_string()).unwrap_or_default(),
        action,
        live_id: live.map(str::to_string),
        reasons: vec![],
        diffs: vec![],
        with_snapshots: vec![],
        protection: Default::default(),
        transient: false,
        until_copied: false,
        retire: false,
        resolved: Default::default(),
        planned: Default::default(),
    }
}

fn plan_of(changes: Vec<Change>, warnings: Vec<String>) -> Plan {
    Plan {
        format: 1,
        account: "123456789012".into(),
        destroy: false,
        desired: "d".into(),
        observed: "o".into(),
        changes,
        warnings,
        upstream: vec![],
        orphaned: vec![],
        cost: vec![],
    }
}

/// One change of every action, as the planner makes them.
fn every_action() -> Plan {
    let mut create = change(Action::Create, "image/demo-gp3@us-east-1", None);
    create.planned = BTreeMap::from([
        ("architecture".into(), "x86_64".into()),
        ("boot_mode".into(), "uefi".into()),
        ("launch_permission".into(), "account 111122223333, once its boot test passes".into()),
        ("name".into(), "demo-gp3-1.0".into()),
        ("volume_type".into(), "gp3".into()),
    ]);
    let mut update = change(Action::Update, "image/a@us-east-1", Some("ami-1"));
    update.diffs = vec![
        AttrDiff { attribute: Attribute::Description, before: Some("old".into()), after: Some("new".into()) },
        AttrDiff { attribute: Attribute::Tag("team".into()), before: None, after: Some("os".into()) },
    ];
    let mut replace = change(Action::Replace, "image/b@eu-west-1", Some("ami-2"));
    replace.reasons = vec![Reason::CannotChangeInPlace { attributes: vec!["volume_type".into()] }];
    replace.diffs = vec![AttrDiff {
        attribute: Attribute::Immutable("volume_type".into()),
        before: Some("gp2".into()),
        after: Some("gp3".into()),
    }];
    replace.planned = BTreeMap::from([("volume_type".into(), "gp3".into())]);
    let mut delete = change(Action::Delete, "image/old@eu-west-1", Some("ami-9"));
    delete.reasons = vec![Reason::NoLongerWanted];
    delete.with_snapshots = vec!["snap-9".into()];
    delete.protection = crate::cloud::LiveProtection::On(crate::cloud::Protection::WithoutCooldown);
    let mut plan = plan_of(
        vec![
            change(Action::Create, "snapshot/demo-root@us-east-1", None),
            create,
            update,
            replace,
            delete,
            change(Action::NoOp, "image/c@us-east-1", Some("ami-3")),
        ],
        vec!["EBS encryption by default is on in eu-west-1".into()],
    );
    plan.cost = vec![
        crate::plan::cost::RegionCost {
            region: "eu-west-1".into(),
            added_bytes: 2_000_000_000,
            removed_bytes: 8_000_000_000,
            at_most: false,
        },
        crate::plan::cost::RegionCost {
            region: "us-east-1".into(),
            added_bytes: 10_000_000_000,
            removed_bytes: 0,
            at_most: true,
        },
    ];
    plan.orphaned = vec![crate::plan::OrphanedStack {
        stack: "dropped".into(),
        regions: BTreeMap::from([("us-east-1".into(), 3)]),
        kinds: BTreeMap::from([("image".into(), 2), ("snapshot".into(), 1)]),
    }];
    plan
}

#[test]
fn renders_markers_diffs_and_summary() {
    let plan = every_action();
    insta::assert_snapshot!(super::plan(&plan, Style { color: false }, false));
    let colored = super::plan(&plan, Style { color: true }, false);
    assert!(colored.contains("\x1b[32m  +\x1b[0m snapshot/demo-root@us-east-1"), "{colored:?}");
    assert!(colored.contains("\x1b[31m-/+\x1b[0m image/b@eu-west-1"), "{colored:?}");
}

#[test]
fn markdown_for_a_pull_request() {
    let text =
        markdown::plan(&every_action(), markdown::GITHUB_COMMENT_LIMIT, "`amiplan show plan.bin` shows all of it");
    insta::assert_snapshot!(text);
}

#[test]
fn markdown_names_the_copies_source_and_what_the_build_alone_needs() {
    let mut source = change(Action::Create, "image/demo-gp3@us-east-1", None);
    source.until_copied = true;
    let mut copy = change(Action::Create, "image/demo-gp3@eu-west-1", None);
    copy.planned = BTreeMap::from([("source".into(), "image/demo-gp3@us-east-1".into())]);
    let mut helper = change(Action::Create, "helper/demo@us-east-1", None);
    helper.transient = true;
    let text = markdown::plan(&plan_of(vec![source, copy, helper], vec![]), markdown::GITHUB_COMMENT_LIMIT, "");
    let row = |node: &str| {
        text.lines().find(|l| l.starts_with("| ") && l.contains(node)).unwrap_or_else(|| panic!("{node}: {text}"))
    };
    assert!(row("image/demo-gp3@us-east-1").contains("create (the copies' source, removed once copied)"), "{text}");
    assert!(row("helper/demo@us-east-1").contains("create (for the build)"), "{text}");
    let copied = row("image/demo-gp3@eu-west-1");
    assert!(copied.contains("create") && !copied.contains("source, removed") && !copied.contains("for the build"));
}

#[test]
fn markdown_says_no_changes_plainly() {
    let plan = plan_of(vec![change(Action::NoOp, "image/c@us-east-1", Some("ami-3"))], vec![]);
    let text = markdown::plan(&plan, markdown::GITHUB_COMMENT_LIMIT, "");
    assert!(text.contains("**No changes.** 1 resource(s) match the manifests."), "{text}");
    assert!(!text.contains("[!CAUTION]") && !text.contains("<details>"), "{text}");
}

#[test]
fn markdown_stays_within_a_github_comment_and_says_what_it_left_out() {
    // Enough regions and deletions to be several times the limit.
    let mut changes = Vec::new();
    for region in 0..40 {
        for image in 0..100 {
            let mut delete = change(Action::Delete, &format!("image/demo-{image}@region-{region}"), Some("ami-1"));
            delete.reasons = vec![Reason::NoLongerWanted];
            changes.push(delete);
        }
    }
    let plan = plan_of(changes, vec![]);
    let limit = markdown::GITHUB_COMMENT_LIMIT;
    let text = markdown::plan(&plan, limit, "`amiplan show plan.bin` shows all of it");
    assert!(text.chars().count() <= limit, "{} characters", text.chars().count());
    assert!(text.len() > limit * 9 / 10, "the room is used: {} bytes", text.len());
    assert!(text.starts_with(markdown::MARKER), "{}", &text[..200]);
    assert!(text.contains("### amiplan plan: 0 to create, 0 to update, 0 to replace, 4000 to delete"));
    assert!(text.contains("> [!CAUTION]\n> This plan deletes 4000 and replaces 0 resource(s):"));
    assert!(text.contains("more line(s)"), "the deletions list says it was cut");
    assert!(
        text.trim_end()
            .ends_with("left out to stay within GitHub's comment limit; `amiplan show plan.bin` shows all of it._"),
        "{}",
        &text[text.len() - 300..]
    );
}

#[test]
fn json_document_has_before_and_after_per_change() {
    let document = document::PlanDocument::of(&every_action());
    let json = serde_json::to_value(&document).unwrap();
    insta::assert_json_snapshot!(json);
    assert_eq!(json["format_version"], document::FORMAT_VERSION);
    // The document reads back as itself: what consumers parse is what amiplan wrote.
    let text = document::json(&every_action());
    assert_eq!(serde_json::from_str::<document::PlanDocument>(&text).unwrap(), document);
}
