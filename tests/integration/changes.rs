//! Changes after a first apply: in-place updates, drift, removals, replacements, adoption of
//! crash leftovers, and refusal of stale saved plans.

use aws_sdk_ec2::types::Tag;

use crate::support::*;

fn setup(name: &str, stack: &str) -> (Moto, std::path::PathBuf) {
    let moto = Moto::start();
    let dir = workdir(name);
    sample_image(&dir.join("disk.raw"), 4, 2);
    StackManifest::direct(stack).write(&dir);
    expect_code(&moto.amiplan(&dir, &["apply", "stack.yaml", "--auto-approve"]), 0);
    (moto, dir)
}

#[tokio::test(flavor = "multi_thread")]
async fn updates_in_place_corrects_drift_removes_and_replaces() {
    let (moto, dir) = setup("changes", "chg");
    let mut manifest = StackManifest::direct("chg");

    // A tag: an in-place update everywhere, no rebuild. (Description updates take the same path;
    // moto ignores them, so executor.rs checks them against the in-process fake.)
    manifest.tags = vec![("distro", "second".into())];
    manifest.write(&dir);
    let plan = moto.amiplan(&dir, &["plan", "stack.yaml", "--detailed-exitcode"]);
    expect_code(&plan, 2);
    let text = stdout(&plan);
    assert!(text.contains("Plan: 0 to create, 7 to update in place, 0 to replace, 0 to delete"), "{text}");
    assert!(text.contains("- tags.distro = \"test\"") && text.contains("+ tags.distro = \"second\""), "{text}");
    expect_code(&moto.amiplan(&dir, &["apply", "stack.yaml", "--auto-approve"]), 0);
    for region in REGIONS {
        for image in moto.stack_images(region, "chg").await {
            assert_eq!(tag(image.tags(), "distro"), Some("second"), "{region}");
        }
    }

    // Drift: a tag added by hand and a launch permission opened by hand are both reverted.
    let ec2 = moto.ec2("eu-west-1").await;
    let copy = moto.images_named("eu-west-1", "chg-x86_64-gp3").await[0].image_id().unwrap().to_string();
    ec2.create_tags().resources(&copy).tags(Tag::builder().key("rogue").value("1").build()).send().await.unwrap();
    ec2.modify_image_attribute()
        .image_id(&copy)
        .attribute("launchPermission")
        .operation_type("add".into())
        .user_groups("all")
        .send()
        .await
        .unwrap();
    let plan = moto.amiplan(&dir, &["plan", "stack.yaml"]);
    let text = stdout(&plan);
    assert!(text.contains("~ image/chg-x86_64-gp3@eu-west-1"), "{text}");
    assert!(text.contains("- tags.rogue = \"1\""), "{text}");
    assert!(text.contains("- launch_permission = \"public\""), "{text}");
    expect_code(&moto.amiplan(&dir, &["apply", "stack.yaml", "--auto-approve"]), 0);
    let fixed = &moto.images_named("eu-west-1", "chg-x86_64-gp3").await[0];
    assert_eq!(tag(fixed.tags(), "rogue"), None);
    assert_eq!(fixed.public(), Some(false));

    // A variant removed from the manifest: only its AMIs go, in every region.
    manifest.volume_types = vec!["gp3"];
    manifest.write(&dir);
    let plan = moto.amiplan(&dir, &["plan", "stack.yaml"]);
    let text = stdout(&plan);
    assert!(text.contains("Plan: 0 to create, 0 to update in place, 0 to replace, 3 to delete"), "{text}");
    expect_code(&moto.amiplan(&dir, &["apply", "stack.yaml", "--auto-approve"]), 0);
    for region in REGIONS {
        assert!(moto.images_named(region, "chg-x86_64-standard").await.is_empty(), "{region}");
        assert_eq!(moto.images_named(region, "chg-x86_64-gp3").await.len(), 1, "{region}");
    }

    // An attribute AWS cannot change: replacement, with the reason.
    manifest.boot_mode = "uefi";
    manifest.write(&dir);
    let plan = moto.amiplan(&dir, &["plan", "stack.yaml"]);
    let text = stdout(&plan);
    assert!(text.contains("-/+ image/chg-x86_64-gp3@us-east-1"), "{text}");
    assert!(text.contains("boot_mode cannot change in place"), "{text}");
    assert!(text.contains("Plan: 0 to create, 0 to update in place, 3 to replace, 0 to delete"), "{text}");
    let old = moto.images_named("us-east-1", "chg-x86_64-gp3").await[0].image_id().unwrap().to_string();
    expect_code(&moto.amiplan(&dir, &["apply", "stack.yaml", "--auto-approve"]), 0);
    for region in REGIONS {
        let images = moto.images_named(region, "chg-x86_64-gp3").await;
        assert_eq!(images.len(), 1, "{region}: exactly one AMI per name after a replace");
        assert_ne!(images[0].image_id(), Some(old.as_str()));
    }
    expect_code(&moto.amiplan(&dir, &["plan", "stack.yaml", "--detailed-exitcode"]), 0);
    expect_code(&moto.amiplan(&dir, &["destroy", "stack.yaml", "--auto-approve"]), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn crash_leftovers_are_adopted_and_snapshots_reused() {
    let (moto, dir) = setup("adopt", "adp");
    let ec2 = moto.ec2("us-east-1").await;

    // As if amiplan died between RegisterImage and tagging: the AMI has its name, no tags.
    let image = moto.images_named("us-east-1", "adp-x86_64-gp3").await[0].clone();
    let keys: Vec<Tag> = image.tags().iter().map(|t| Tag::builder().key(t.key().unwrap()).build()).collect();
    ec2.delete_tags().resources(image.image_id().unwrap()).set_tags(Some(keys)).send().await.unwrap();
    let plan = moto.amiplan(&dir, &["plan", "stack.yaml"]);
    let text = stdout(&plan);
    assert!(text.contains("adopt"), "{text}");
    assert!(text.contains("0 to create"), "{text}");
    expect_code(&moto.amiplan(&dir, &["apply", "stack.yaml", "--auto-approve"]), 0);
    let after = moto.images_named("us-east-1", "adp-x86_64-gp3").await;
    assert_eq!(after.len(), 1, "adopted, not duplicated");
    assert_eq!(tag(after[0].tags(), "amiplan:stack"), Some("adp"));

    // The AMI is gone but its uploaded snapshot is not: re-register without uploading again.
    let snapshot_before: Vec<_> = moto
        .stack_snapshots("us-east-1", "adp")
        .await
        .iter()
        .filter_map(|s| s.snapshot_id().map(str::to_string))
        .collect();
    let standard = moto.images_named("us-east-1", "adp-x86_64-standard").await[0].image_id().unwrap().to_string();
    ec2.deregister_image().image_id(&standard).send().await.unwrap();
    let plan = moto.amiplan(&dir, &["plan", "stack.yaml"]);
    let text = stdout(&plan);
    assert!(text.contains("Plan: 1 to create, 0 to update in place, 0 to replace, 0 to delete"), "{text}");
    assert!(!text.contains("+ snapshot/"), "{text}");
    expect_code(&moto.amiplan(&dir, &["apply", "stack.yaml", "--auto-approve"]), 0);
    let snapshot_after: Vec<_> = moto
        .stack_snapshots("us-east-1", "adp")
        .await
        .iter()
        .filter_map(|s| s.snapshot_id().map(str::to_string))
        .collect();
    assert_eq!(snapshot_before, snapshot_after, "no second upload");
    expect_code(&moto.amiplan(&dir, &["plan", "stack.yaml", "--detailed-exitcode"]), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn confirmation_and_saved_plans_protect_against_surprises() {
    let moto = Moto::start();
    let dir = workdir("saved");
    sample_image(&dir.join("disk.raw"), 2, 3);
    let mut manifest = StackManifest::direct("svd");
    manifest.write(&dir);

    // Not a terminal and no --auto-approve: refuse, change nothing.
    let refused = moto.amiplan(&dir, &["apply", "stack.yaml"]);
    expect_code(&refused, 1);
    assert!(stderr(&refused).contains("--auto-approve"), "{}", stderr(&refused));
    assert!(moto.stack_snapshots("us-east-1", "svd").await.is_empty());

    // Nothing exists yet: a plan leaves the raw image for its upload, but a plan saved to apply
    // later reads it, so that it says exactly what it uploads.
    let unsaved = moto.amiplan(&dir, &["plan", "stack.yaml"]);
    assert!(stdout(&unsaved).contains("not read yet: nothing exists of it"), "{}", stdout(&unsaved));
    // Not read, the upload and the storage it adds are bounded by the blocks the file system
    // holds data for: all three here, the written zero block included.
    let file_blocks = (std::fs::metadata(dir.join("disk.raw")).unwrap().len() as usize).div_ceil(BLOCK) as u64;
    assert_eq!(file_blocks, 3);
    let (bytes, at_most) = planned_upload(&stdout(&moto.amiplan(&dir, &["plan", "stack.yaml", "--json"])));
    assert_eq!(bytes, ("upload_bytes_at_most", file_blocks * BLOCK as u64));
    assert_eq!(at_most, (file_blocks * BLOCK as u64, true));
    let saved = moto.amiplan(&dir, &["plan", "stack.yaml", "--out", "old.json"]);
    expect_code(&saved, 0);
    assert!(stdout(&saved).contains("read in full"), "{}", stdout(&saved));
    // Read (the saved plan filled the cache), exactly: the two blocks that are not zeros.
    let (bytes, at_most) = planned_upload(&stdout(&moto.amiplan(&dir, &["plan", "stack.yaml", "--json"])));
    assert_eq!(bytes, ("upload_bytes", 2 * BLOCK as u64));
    assert_eq!(at_most, (2 * BLOCK as u64, false));
    expect_code(&moto.amiplan(&dir, &["apply", "stack.yaml", "--auto-approve"]), 0);
    let stale = moto.amiplan(&dir, &["apply", "--plan", "old.json", "--auto-approve"]);
    expect_code(&stale, 1);
    assert!(stderr(&stale).contains("live state changed since the plan was made"), "{}", stderr(&stale));

    expect_code(&moto.amiplan(&dir, &["plan", "stack.yaml", "--out", "new.json"]), 0);
    manifest.tags = vec![("distro", "edited".into())];
    manifest.write(&dir);
    let edited = moto.amiplan(&dir, &["apply", "--plan", "new.json", "--auto-approve"]);
    expect_code(&edited, 1);
    assert!(stderr(&edited).contains("manifests or source images changed"), "{}", stderr(&edited));

    // A destroy plan shows every owned resource before destroy runs.
    let preview = moto.amiplan(&dir, &["plan", "stack.yaml", "--destroy", "--json"]);
    expect_code(&preview, 0);
    let json = plan_document(&stdout(&preview));
    let deletes = json["changes"].as_array().unwrap().iter().filter(|c| c["action"] == "delete").count();
    assert_eq!(deletes, 7, "{json}");

    // A plan saved with a narrower discovery scope is applied within that same scope: with a
    // region dropped from the manifest, the copy left there is outside it, and the saved plan
    // (which never saw it) is still exactly what applying it does.
    manifest.regions = vec!["us-east-1", "eu-west-1"];
    manifest.write(&dir);
    expect_code(&moto.amiplan(&dir, &["plan", "stack.yaml", "--regions", "manifest", "--out", "scoped.json"]), 0);
    let scoped = moto.amiplan(&dir, &["apply", "--plan", "scoped.json", "--auto-approve"]);
    expect_code(&scoped, 0);
    assert_eq!(moto.stack_images("ap-southeast-2", "svd").await.len(), 2, "outside the saved scope");
}

/// Runs amiplan under a pseudo-terminal (util-linux `script`) and types `answer` at its prompt.
fn on_terminal(moto: &Moto, dir: &std::path::Path, args: &str, answer: &str) -> std::process::Output {
    use std::io::Write;
    let args: Vec<&str> = args.split_whitespace().collect();
    let mut child = crate::support::amiplan_on_pty(&moto.endpoint, dir, &args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("util-linux `script` runs");
    child.stdin.take().unwrap().write_all(answer.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_terminal_is_asked_and_only_yes_applies() {
    let moto = Moto::start();
    let dir = workdir("terminal");
    sample_image(&dir.join("disk.raw"), 2, 4);
    StackManifest::direct("tty").write(&dir);

    let declined = on_terminal(&moto, &dir, "apply stack.yaml", "no\n");
    assert!(stdout(&declined).contains("Only 'yes' is accepted"), "{}", stdout(&declined));
    assert!(stdout(&declined).contains("cancelled; nothing was changed"), "{}", stdout(&declined));
    assert!(moto.stack_snapshots("us-east-1", "tty").await.is_empty());

    let accepted = on_terminal(&moto, &dir, "apply stack.yaml", "yes\n");
    assert!(stdout(&accepted).contains("Done: 7 created."), "{}", stdout(&accepted));
    assert_eq!(moto.stack_images("eu-west-1", "tty").await.len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_removed_manifest_leaves_a_stack_that_plans_report_and_prune_deletes() {
    // Two stacks applied from one directory; then one manifest is removed.
    let (moto, dir) = setup("changes-prune", "kept");
    let other = workdir("changes-prune-other");
    sample_image(&other.join("disk.raw"), 3, 9);
    StackManifest::direct("dropped").write(&other);
    expect_code(&moto.amiplan(&other, &["apply", "stack.yaml", "--auto-approve"]), 0);

    let planned = moto.amiplan(&dir, &["plan", "stack.yaml", "--detailed-exitcode"]);
    expect_code(&planned, 0);
    assert!(
        stdout(&planned).contains("not declared: stack dropped owns ")
            && stdout(&planned).contains("`--prune` plans their deletion"),
        "{}",
        stdout(&planned)
    );
    let json = plan_document(&stdout(&moto.amiplan(&dir, &["plan", "stack.yaml", "--json"])));
    assert_eq!(json["orphaned_stacks"][0]["stack"], "dropped", "{json}");
    assert_eq!(json["orphaned_stacks"][0]["kinds"]["image"], 6, "{json}");

    // An apply without the flag leaves it; with it, the stack's AMIs and snapshots go.
    let applied = moto.amiplan(&dir, &["apply", "stack.yaml", "--auto-approve"]);
    expect_code(&applied, 0);
    assert_eq!(moto.stack_images("us-east-1", "dropped").await.len(), 2);
    let pruned = moto.amiplan(&dir, &["apply", "stack.yaml", "--prune", "--auto-approve"]);
    expect_code(&pruned, 0);
    assert_stack_gone(&moto, "dropped", &REGIONS).await;
    assert_eq!(moto.stack_images("us-east-1", "kept").await.len(), 2, "the declared stack stays");
    // A saved plan carries the flag: `apply --plan` does not take it again.
    let refused = moto.amiplan(&dir, &["apply", "--plan", "x.json", "--prune"]);
    expect_code(&refused, 64);
}

/// From a JSON plan of the stack's first apply: what the snapshot's change says it uploads (the
/// attribute's name and bytes), and the storage the plan adds in the build region with whether
/// that is a bound.
fn planned_upload(text: &str) -> ((&'static str, u64), (u64, bool)) {
    let json = plan_document(text);
    let snapshot = json["changes"].as_array().unwrap().iter().find(|c| c["kind"] == "snapshot").unwrap();
    let after = &snapshot["after"];
    let bytes = ["upload_bytes", "upload_bytes_at_most"]
        .into_iter()
        .find_map(|name| after[name].as_str().map(|value| (name, value.parse().unwrap())))
        .unwrap_or_else(|| panic!("no upload bytes in {after}"));
    let regions = json["storage_cost"]["regions"].as_array().unwrap();
    let added = |name: &str| {
        let region = regions.iter().find(|r| r["region"] == name).unwrap_or_else(|| panic!("{name} in {json}"));
        (region["added_bytes"].as_u64().unwrap(), region["at_most"].as_bool().unwrap())
    };
    let (stored, at_most) = added("us-east-1");
    // Each region the two variants are copied to stores both copies of the snapshot.
    for copied in ["eu-west-1", "ap-southeast-2"] {
        assert_eq!(added(copied), (2 * stored, at_most), "{json}");
    }
    (bytes, (stored, at_most))
}
