//! The main job end to end: validate → plan → apply → plan (no changes) → output → destroy.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};

use aws_sdk_ec2::types::{BlockDeviceMapping, EbsBlockDevice};

use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn apply_converges_and_destroy_removes_exactly_what_the_stack_owns() {
    let moto = Moto::start();
    let dir = workdir("lifecycle");
    let image = sample_image(&dir.join("disk.raw"), 9, 1);
    StackManifest::direct("life").write(&dir);

    let validate = moto.amiplan(&dir, &["validate", "stack.yaml"]);
    expect_code(&validate, 0);

    let plan = moto.amiplan(&dir, &["plan", "stack.yaml", "--detailed-exitcode", "--out", "saved.json"]);
    expect_code(&plan, 2);
    assert!(stdout(&plan).contains("Plan: 7 to create"), "{}", stdout(&plan));
    assert!(stdout(&plan).contains("+ image/life-x86_64-gp3@eu-west-1 create"), "{}", stdout(&plan));
    assert!(moto.stack_images("us-east-1", "life").await.is_empty(), "plan must not create anything");
    // A create says what it makes: the copy, what it copies.
    assert!(stdout(&plan).contains("+ copy_of = \"image/life-x86_64-gp3@us-east-1\""), "{}", stdout(&plan));
    assert!(stdout(&plan).contains("+ launch_permission = \"private\""), "{}", stdout(&plan));

    // The saved plan renders again: the same for people, as the documented JSON, as Markdown.
    let shown = moto.amiplan(&dir, &["show", "saved.json"]);
    expect_code(&shown, 0);
    assert!(stdout(&plan).ends_with(&stdout(&shown)), "{}\n---\n{}", stdout(&plan), stdout(&shown));
    let shown = moto.amiplan(&dir, &["show", "saved.json", "--json"]);
    let document = plan_document(&stdout(&shown));
    assert_eq!(document["summary"]["create"], 7, "{document}");
    let copy = document["changes"].as_array().unwrap().iter().find(|c| c["node"] == "image/life-x86_64-gp3@eu-west-1");
    assert_eq!(copy.unwrap()["after"]["copy_of"], "image/life-x86_64-gp3@us-east-1", "{document}");
    // 9 blocks, of which 0, 3 and 6 hold data, and a last partial one: 4 blocks uploaded once in
    // the build region, and copied with each of the 2 variants' AMIs to each other region.
    let blocks = image.chunks(512 * 1024).filter(|b| b.iter().any(|&x| x != 0)).count() as u64;
    for region in document["storage_cost"]["regions"].as_array().unwrap() {
        let copies = if region["region"] == "us-east-1" { 1 } else { 2 };
        assert_eq!(region["added_bytes"], blocks * 512 * 1024 * copies, "{region}");
    }
    let shown = moto.amiplan(&dir, &["show", "saved.json", "--markdown"]);
    assert!(stdout(&shown).contains("### amiplan plan: 7 to create, 0 to update, 0 to replace, 0 to delete"));
    assert!(stdout(&shown).contains("```diff\n# snapshot/life-root@us-east-1\n"), "{}", stdout(&shown));

    let apply = moto.amiplan(&dir, &["apply", "--plan", "saved.json", "--auto-approve", "--events", "events.jsonl"]);
    expect_code(&apply, 0);
    assert!(stdout(&apply).contains("Done: 7 created."), "{}", stdout(&apply));
    // Every node starts once and succeeds once, in that order, with its resource and duration.
    let events: Vec<serde_json::Value> = std::fs::read_to_string(dir.join("events.jsonl"))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(events.len(), 14, "{events:#?}");
    for node in events.iter().filter(|e| e["event"] == "succeeded") {
        let started = events.iter().position(|e| e["event"] == "started" && e["node"] == node["node"]).unwrap();
        let done = events.iter().position(|e| std::ptr::eq(e, node)).unwrap();
        assert!(started < done, "{node}");
        assert_eq!(node["stack"], "life");
        assert_eq!(node["action"], "create");
        assert!(node["resource"].as_str().is_some_and(|r| r.starts_with("ami-") || r.starts_with("snap-")), "{node}");
        assert!(node["seconds"].as_f64().is_some() && node["time"].as_str().is_some_and(|t| t.ends_with('Z')));
    }

    // Every variant in every region, with the declared attributes and the ownership tags.
    for region in REGIONS {
        let images = moto.stack_images(region, "life").await;
        let names: BTreeSet<_> = images.iter().filter_map(|i| i.name()).collect();
        assert_eq!(names, BTreeSet::from(["life-x86_64-gp3", "life-x86_64-standard"]), "{region}");
        for image in &images {
            let name = image.name().unwrap();
            // moto keeps only the name and description of RegisterImage; the other attributes
            // are checked on the call itself by the fake-cloud tests (executor.rs).
            assert_eq!(image.description(), Some("Integration test image"));
            assert_eq!(image.state().map(|s| s.as_str()), Some("available"));
            assert_eq!(image.public(), Some(false), "nothing is public unless the manifest says so");
            assert_eq!(tag(image.tags(), "amiplan:node"), Some(format!("image/{name}@{region}").as_str()));
            assert_eq!(tag(image.tags(), "distro"), Some("test"));
            assert_eq!(tag(image.tags(), "Name"), Some(name));
            assert!(tag(image.tags(), "amiplan:spec").is_some());
        }
    }

    // The uploaded snapshot holds the image byte for byte, read back through the EBS direct API.
    let snapshots = moto.stack_snapshots("us-east-1", "life").await;
    let uploaded: Vec<_> =
        snapshots.iter().filter(|s| tag(s.tags(), "amiplan:node") == Some("snapshot/life-root@us-east-1")).collect();
    assert_eq!(uploaded.len(), 1);
    let digest = tag(uploaded[0].tags(), "amiplan:source").unwrap();
    assert_eq!(Some(digest), amiplan::source::inspect_with(&dir.join("disk.raw"), None, None).unwrap().address.get());
    let read_back = read_snapshot(&moto, uploaded[0].snapshot_id().unwrap(), image.len()).await;
    assert!(read_back == image, "snapshot content differs from the source image");

    // Converged: a second plan has nothing to do.
    let again = moto.amiplan(&dir, &["plan", "stack.yaml", "--detailed-exitcode"]);
    expect_code(&again, 0);
    assert!(stdout(&again).contains("No changes."), "{}", stdout(&again));

    // What acts on live state only needs none of the files the manifest names: with the image
    // gone (as from the build machine of an old release), output, a destroy plan and destroy
    // still work, and read nothing; a plan towards the manifest says what is missing.
    std::fs::remove_file(dir.join("disk.raw")).unwrap();
    let _ = std::fs::remove_dir_all(dir.join(".amiplan-cache"));
    let missing = moto.amiplan(&dir, &["plan", "stack.yaml"]);
    expect_code(&missing, 1);
    assert!(stderr(&missing).contains("disk.raw` does not exist or is not a file"), "{}", stderr(&missing));
    let preview = moto.amiplan(&dir, &["plan", "stack.yaml", "--destroy"]);
    expect_code(&preview, 0);
    assert!(stdout(&preview).contains("7 to delete"), "{}", stdout(&preview));
    assert!(!stdout(&preview).contains("Source of"), "a destroy plan needs no source: {}", stdout(&preview));

    // Output lists every AMI by stack, variant and region.
    let output = moto.amiplan(&dir, &["output", "stack.yaml", "--json"]);
    expect_code(&output, 0);
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    for region in REGIONS {
        let live = moto.images_named(region, "life-x86_64-gp3").await;
        assert_eq!(
            json["stacks"]["life"]["life-x86_64-gp3"][region]["image_id"],
            live[0].image_id().unwrap(),
            "{json}"
        );
    }

    // An AMI that amiplan did not make survives destroy.
    let bystander = register_bystander(&moto, "us-east-1").await;

    let destroy = moto.amiplan(&dir, &["destroy", "stack.yaml", "--auto-approve"]);
    expect_code(&destroy, 0);
    assert_stack_gone(&moto, "life", &REGIONS).await;
    assert!(!dir.join(".amiplan-cache").exists(), "nothing read the image");
    let survivor = moto.ec2("us-east-1").await.describe_images().image_ids(&bystander).send().await.unwrap();
    assert_eq!(survivor.images().len(), 1, "destroy touched an AMI it does not own");

    let after = moto.amiplan(&dir, &["plan", "stack.yaml", "--destroy", "--detailed-exitcode"]);
    expect_code(&after, 0);
}

/// `amiplan apply --auto-approve 2>&1 | head -3`: the reader goes away after three lines. The
/// run must still finish, release its lock and exit with its own code (not panic with 101);
/// `amiplan output | head -1` likewise.
#[tokio::test(flavor = "multi_thread")]
async fn a_reader_that_goes_away_neither_aborts_a_run_nor_keeps_its_lock() {
    let moto = Moto::start();
    let dir = workdir("closed-pipe");
    sample_image(&dir.join("disk.raw"), 5, 2);
    StackManifest::direct("pipe").write(&dir);

    let mut apply = amiplan_command(&moto.endpoint, &dir, &["apply", "stack.yaml", "--auto-approve"]).spawn().unwrap();
    let mut head = BufReader::new(apply.stdout.take().unwrap());
    for _ in 0..3 {
        let mut line = String::new();
        assert!(head.read_line(&mut line).unwrap() > 0, "amiplan said fewer than three lines");
    }
    drop(head);
    drop(apply.stderr.take());
    let status = apply.wait().unwrap();
    assert_eq!(status.code(), Some(0), "the run ends with its own code");

    // Everything was made, and the lock is gone: a second apply takes it and has nothing to do.
    let again = moto.amiplan(&dir, &["apply", "stack.yaml", "--auto-approve"]);
    expect_code(&again, 0);
    assert!(stdout(&again).contains("No changes"), "{}", stdout(&again));

    let mut output = amiplan_command(&moto.endpoint, &dir, &["output", "stack.yaml"]).spawn().unwrap();
    drop(output.stdout.take());
    drop(output.stderr.take());
    assert_eq!(output.wait().unwrap().code(), Some(0));

    expect_code(&moto.amiplan(&dir, &["destroy", "stack.yaml", "--auto-approve"]), 0);
    assert_stack_gone(&moto, "pipe", &REGIONS).await;
}

/// Reassembles the first `len` bytes of a snapshot from its blocks (absent blocks read as zeros).
pub async fn read_snapshot(moto: &Moto, snapshot_id: &str, len: usize) -> Vec<u8> {
    let ebs = moto.ebs("us-east-1").await;
    let listing = ebs.list_snapshot_blocks().snapshot_id(snapshot_id).send().await.unwrap();
    let mut data = vec![0u8; len.div_ceil(BLOCK) * BLOCK];
    for block in listing.blocks() {
        let index = block.block_index().unwrap() as usize;
        let out = ebs
            .get_snapshot_block()
            .snapshot_id(snapshot_id)
            .block_index(index as i32)
            .block_token(block.block_token().unwrap())
            .send()
            .await
            .unwrap();
        let bytes = out.block_data.collect().await.unwrap().into_bytes();
        data[index * BLOCK..index * BLOCK + bytes.len()].copy_from_slice(&bytes);
    }
    data.truncate(len);
    data
}

/// Registers an untagged AMI with an unrelated name, as another tool would.
pub async fn register_bystander(moto: &Moto, region: &str) -> String {
    let ec2 = moto.ec2(region).await;
    let volume = ec2.create_volume().availability_zone(format!("{region}a")).size(1).send().await.unwrap();
    let snapshot = ec2.create_snapshot().volume_id(volume.volume_id().unwrap()).send().await.unwrap();
    let mapping = BlockDeviceMapping::builder()
        .device_name("/dev/xvda")
        .ebs(EbsBlockDevice::builder().snapshot_id(snapshot.snapshot_id().unwrap()).build())
        .build();
    let image = ec2
        .register_image()
        .name("someone-elses-image")
        .root_device_name("/dev/xvda")
        .block_device_mappings(mapping)
        .send()
        .await
        .unwrap();
    image.image_id().unwrap().to_string()
}

/// What a person at a terminal sees: apply run on a pseudo terminal (util-linux `script`), so
/// that amiplan's stderr is a terminal, as it is for someone typing the command; and what a
/// pipeline's log gets from the same run off a terminal.
#[tokio::test(flavor = "multi_thread")]
async fn a_terminal_sees_live_progress_and_a_log_sees_plain_lines() {
    let moto = Moto::start();
    let dir = workdir("progress-pty");
    sample_image(&dir.join("disk.raw"), 6, 3);
    StackManifest::small("tty").write(&dir);

    let args = ["apply", "stack.yaml", "--auto-approve", "--regions", "manifest"];
    let mut on_pty = amiplan_on_pty(&moto.endpoint, &dir, &args);
    on_pty.env_remove("NO_COLOR").env("TERM", "xterm-256color");
    let output = on_pty.output().unwrap();
    let seen = String::from_utf8_lossy(&output.stdout).to_string();
    assert_eq!(output.status.code(), Some(0), "{seen}");
    // indicatif draws and redraws in place: cursor movements and line clears.
    assert!(seen.contains("\u{1b}[2K") || seen.contains("\u{1b}[1A"), "no live display: {seen:?}");
    assert!(seen.contains("upload [") || seen.contains("upload: sen"), "no upload bar: {seen:?}");
    for phase in ["taking the lock of 1 stack(s)…", "reading live state…"] {
        assert!(seen.contains(phase), "{phase} in {seen:?}");
    }
    assert!(seen.contains("snapshot/tty-root@us-east-1: created snap-"), "{seen:?}");
    assert!(seen.contains("image/tty-x86_64-gp3@eu-west-1: created ami-"), "{seen:?}");

    // Off a terminal: lines as nodes start and end, no escape codes.
    let destroyed = moto.amiplan(&dir, &["destroy", "stack.yaml", "--auto-approve", "--regions", "manifest"]);
    expect_code(&destroyed, 0);
    let log = stderr(&destroyed);
    assert!(!log.contains('\u{1b}'), "escape codes in a log: {log:?}");
    assert!(log.contains("image/tty-x86_64-gp3@eu-west-1: delete started"), "{log}");
    assert!(log.contains("image/tty-x86_64-gp3@eu-west-1: deleted ami-"), "{log}");
}
