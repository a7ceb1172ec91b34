//! Guarantees under failure, through the fault-injecting proxy (proxy.rs) in front of moto:
//! faults, crashes, interrupts, concurrent runs, and secrets.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::proxy::{Faults, Proxy};
use crate::support::*;

fn env_count(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn stack_dir(name: &str, text: &str, seed: u64) -> std::path::PathBuf {
    let dir = workdir(name);
    sample_image(&dir.join("disk.raw"), 4, seed);
    std::fs::write(dir.join("stack.yaml"), text).unwrap();
    dir
}

/// Asserts that exactly the desired AMIs exist (one per name and region) and that every snapshot
/// tagged with the stack is either its upload or behind one of its AMIs.
async fn assert_converged(moto: &Moto, stack: &str, names: &[&str], regions: &[&str]) {
    for region in regions {
        let mut behind_images = Vec::new();
        for name in names {
            let images = moto.images_named(region, name).await;
            assert_eq!(images.len(), 1, "{stack}: {name} in {region}: {} AMIs", images.len());
            for mapping in images[0].block_device_mappings() {
                behind_images.extend(mapping.ebs().and_then(|e| e.snapshot_id()).map(str::to_string));
            }
        }
        for snapshot in moto.stack_snapshots(region, stack).await {
            let id = snapshot.snapshot_id().unwrap().to_string();
            let node = tag(snapshot.tags(), "amiplan:node").unwrap_or_default();
            let upload = format!("snapshot/{stack}-root@{region}");
            assert!(
                node == upload || behind_images.contains(&id),
                "{stack}: leaked snapshot {id} ({node}) in {region}"
            );
        }
    }
}

/// Starts `amiplan apply` through `proxy` and returns once it has made a call to `operation`.
async fn apply_until(proxy: &Proxy, dir: &std::path::Path, operation: &str) -> tokio::process::Child {
    let command = amiplan_command(&proxy.endpoint, dir, &["apply", "stack.yaml", "--auto-approve"]);
    let child = tokio::process::Command::from(command).spawn().unwrap();
    while !proxy.calls().iter().any(|c| c.operation == operation) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_is_read_only_and_discovery_is_one_call_per_kind_per_region() {
    let moto = Moto::start();
    let small = stack_dir("batched-small", &StackManifest::direct("few").yaml(), 11);
    let large_text = StackManifest { volume_types: vec!["gp3", "gp2", "standard"], ..StackManifest::direct("many") }
        .with_encryption()
        .yaml();
    let large = stack_dir("batched-large", &large_text, 12);
    for dir in [&small, &large] {
        expect_code(&moto.amiplan(dir, &["apply", "stack.yaml", "--auto-approve"]), 0);
    }
    let mut per_region = Vec::new();
    for dir in [&small, &large] {
        let proxy = Proxy::start(&moto.raw, Faults::default(), 1).await;
        let plan = amiplan_async(&proxy.endpoint, dir, &["plan", "stack.yaml", "--regions", "manifest"]).await;
        expect_code(&plan, 0);
        let calls = proxy.calls();
        let mutating: Vec<_> = calls.iter().filter(|c| c.is_mutating()).map(|c| &c.operation).collect();
        assert!(mutating.is_empty(), "plan made mutating calls: {mutating:?}");
        let mut counts: BTreeMap<(String, String), usize> = BTreeMap::new();
        for call in calls.iter().filter(|c| c.service == "ec2") {
            *counts.entry((call.region.clone(), call.operation.clone())).or_default() += 1;
        }
        for region in REGIONS {
            let count = |op: &str| counts.get(&(region.to_string(), op.to_string())).copied().unwrap_or(0);
            // One by the stack tag, one by the desired names (AMIs adopted after a crash).
            assert_eq!((count("DescribeImages"), count("DescribeSnapshots")), (2, 1), "{region}: {counts:?}");
        }
        per_region.push(counts);
    }
    assert_eq!(
        per_region[0], per_region[1],
        "calls per region must not grow with the number of AMIs (2 vs 6 per region)"
    );

    // The same holds for a plan that also scans every other enabled region, and for --destroy.
    let proxy = Proxy::start(&moto.raw, Faults::default(), 2).await;
    expect_code(&amiplan_async(&proxy.endpoint, &large, &["plan", "stack.yaml", "--destroy"]).await, 0);
    assert!(proxy.calls().iter().all(|c| !c.is_mutating()));
}

#[tokio::test(flavor = "multi_thread")]
async fn fault_soak_converges_without_duplicates_or_leaks() {
    let moto = Moto::start();
    let runs = env_count("AMIPLAN_SOAK_RUNS", 3);
    let faults = Faults {
        throttle: 0.20,
        server_error: 0.05,
        drop: 0.02,
        not_found_for: Duration::from_secs(1),
        pending_for: Duration::from_secs(2),
        ..Faults::default()
    };
    let mut totals = crate::proxy::Injected::default();
    for seed in 0..runs {
        let stack = format!("soak{seed}");
        let dir = stack_dir(&format!("soak-{seed}"), &StackManifest::direct(&stack).yaml(), seed);
        // Odd seeds add throttling bursts: 6 calls in a row out of every 40.
        let burst = (seed % 2 == 1).then_some(crate::proxy::Burst { every: 40, length: 6 });
        let proxy = Proxy::start(&moto.raw, Faults { burst, ..faults.clone() }, seed).await;
        let apply = amiplan_async(&proxy.endpoint, &dir, &["apply", "stack.yaml", "--auto-approve"]).await;
        assert_eq!(apply.status.code(), Some(0), "seed {seed}: apply failed\n{}\n{}", stdout(&apply), stderr(&apply));
        let names = [format!("{stack}-x86_64-gp3"), format!("{stack}-x86_64-standard")];
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        assert_converged(&moto, &stack, &names, &REGIONS).await;
        expect_code(&moto.amiplan(&dir, &["plan", "stack.yaml", "--detailed-exitcode"]), 0);
        let destroy = amiplan_async(&proxy.endpoint, &dir, &["destroy", "stack.yaml", "--auto-approve"]).await;
        assert_eq!(
            destroy.status.code(),
            Some(0),
            "seed {seed}: destroy failed\n{}\n{}",
            stdout(&destroy),
            stderr(&destroy)
        );
        assert_stack_gone(&moto, &stack, &REGIONS).await;
        let injected = proxy.injected();
        totals.throttled += injected.throttled;
        totals.server_errors += injected.server_errors;
        totals.not_found += injected.not_found;
        totals.pending += injected.pending;
    }
    assert!(totals.throttled > 0 && totals.server_errors > 0, "{totals:?}");
    assert!(totals.not_found > 0 && totals.pending > 0, "the consistency windows were never hit: {totals:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_after_any_mutating_call_the_next_apply_converges_and_destroy_cleans_up() {
    let moto = Moto::start();
    // A clean apply through the proxy counts the mutating calls a full apply makes.
    let probe = stack_dir("crash-probe", &StackManifest::small("probe").yaml(), 20);
    let proxy = Proxy::start(&moto.raw, Faults::default(), 0).await;
    expect_code(&amiplan_async(&proxy.endpoint, &probe, &["apply", "stack.yaml", "--auto-approve"]).await, 0);
    let total = proxy.mutating_calls().len();
    assert!(total >= 8, "a full apply makes at least 8 mutating calls, saw {total}");
    for k in crash_points(total) {
        let stack = format!("crash{k}");
        let dir = stack_dir(&format!("crash-{k}"), &StackManifest::small(&stack).yaml(), k as u64);
        let killed_at = kill_after_mutating_call(&proxy, &dir, &["apply", "stack.yaml", "--auto-approve"], k).await;

        // No `amiplan unlock`: the killed run's lock names a process of this host that is gone,
        // so the re-run takes it over (and says so when the kill left the lock behind).
        let recovered = moto.amiplan(&dir, &["apply", "stack.yaml", "--auto-approve"]);
        if k == 1 {
            // The lock is the first mutating call: the killed run held it.
            assert!(
                stderr(&recovered).contains("warning: taking over the lock of stack `crash1`"),
                "{}",
                stderr(&recovered)
            );
            assert!(stderr(&recovered).contains("is no longer running"), "{}", stderr(&recovered));
        }
        expect_recovered(&recovered, k, &killed_at);
        let name = format!("{stack}-x86_64-gp3");
        assert_converged(&moto, &stack, &[&name], &["us-east-1", "eu-west-1"]).await;
        expect_code(&moto.amiplan(&dir, &["plan", "stack.yaml", "--detailed-exitcode"]), 0);
        expect_code(&moto.amiplan(&dir, &["destroy", "stack.yaml", "--auto-approve"]), 0);
        assert_stack_gone(&moto, &stack, &["us-east-1", "eu-west-1"]).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigint_and_sigterm_stop_new_work_and_a_rerun_resumes() {
    let moto = Moto::start();
    for signal in ["INT", "TERM"] {
        let stack = format!("sig{}", signal.to_lowercase());
        let dir = stack_dir(&format!("signal-{signal}"), &StackManifest::direct(&stack).yaml(), 30);
        let slow = Faults { latency: Duration::from_millis(150), ..Faults::default() };
        let proxy = Proxy::start(&moto.raw, slow, 3).await;
        // Interrupt once the upload has started: the upload finishes, nothing after it starts.
        let child = apply_until(&proxy, &dir, "StartSnapshot").await;
        let pid = child.id().unwrap();
        std::process::Command::new("kill").args([&format!("-{signal}"), &pid.to_string()]).status().unwrap();
        let output = child.wait_with_output().await.unwrap();
        expect_code(&output, 130);
        assert!(stderr(&output).contains("finishing work in flight"), "{}", stderr(&output));
        assert!(stdout(&output).contains("run apply again to resume"), "{}", stdout(&output));
        assert!(stdout(&output).contains("created snapshot/"), "the upload in flight finished: {}", stdout(&output));
        assert!(!proxy.calls().iter().any(|c| c.operation == "CopyImage"), "no new work after the signal");

        // The interrupted run released its lock; a plain re-run finishes the job.
        expect_code(&moto.amiplan(&dir, &["apply", "stack.yaml", "--auto-approve"]), 0);
        let names = [format!("{stack}-x86_64-gp3"), format!("{stack}-x86_64-standard")];
        assert_converged(&moto, &stack, &[&names[0], &names[1]], &REGIONS).await;
        expect_code(&moto.amiplan(&dir, &["destroy", "stack.yaml", "--auto-approve"]), 0);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_runs_on_one_stack_are_serialised_by_the_lock() {
    let moto = Moto::start();
    let dir = stack_dir("locking", &StackManifest::direct("lck").yaml(), 40);
    let slow = Faults { latency: Duration::from_millis(100), ..Faults::default() };
    let proxy = Proxy::start(&moto.raw, slow, 4).await;
    let first = apply_until(&proxy, &dir, "StartSnapshot").await;
    // A second run fails fast, naming the holder.
    let second = amiplan_async(&moto.endpoint, &dir, &["apply", "stack.yaml", "--auto-approve"]).await;
    expect_code(&second, 1);
    let err = stderr(&second);
    assert!(err.contains("stack `lck` is locked by") && err.contains(&format!("pid {}", first.id().unwrap())), "{err}");
    // A third waits for it, then finds nothing left to do.
    let third = amiplan_async(&moto.endpoint, &dir, &["apply", "stack.yaml", "--auto-approve", "--lock-timeout", "5m"]);
    let (first, third) = tokio::join!(first.wait_with_output(), third);
    expect_code(&first.unwrap(), 0);
    expect_code(&third, 0);
    assert!(stdout(&third).contains("No changes."), "{}", stdout(&third));
    let pairs = moto.ec2("us-east-1").await.describe_key_pairs().send().await.unwrap();
    assert!(
        pairs.key_pairs().iter().all(|k| !k.key_name().unwrap_or("").starts_with("amiplan-lock-")),
        "locks left behind"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn credentials_never_appear_in_output_logs_or_plan_files() {
    const SECRET: &str = "CanarySecretKey0123456789abcdefCANARY";
    const TOKEN: &str = "CanarySessionToken9876543210zyxwvCANARY";
    let moto = Moto::start();
    let dir = stack_dir("secrets", &StackManifest::direct("sec").yaml(), 50);
    let run = |endpoint: &str, args: &[&str], rust_log: Option<&str>| {
        let mut command = amiplan_command(endpoint, &dir, args);
        command.env("AWS_SECRET_ACCESS_KEY", SECRET).env("AWS_SESSION_TOKEN", TOKEN);
        if let Some(filter) = rust_log {
            command.env("RUST_LOG", filter);
        }
        command.output().unwrap()
    };
    let outputs = [
        run(&moto.endpoint, &["plan", "stack.yaml", "-vv", "--json", "--out", "plan.json"], None),
        run(&moto.endpoint, &["apply", "--plan", "plan.json", "--auto-approve", "-vv"], Some("trace")),
        run(&moto.endpoint, &["output", "stack.yaml", "--json", "-vv"], None),
        run(&moto.endpoint, &["destroy", "stack.yaml", "--auto-approve", "-vv", "--json"], Some("debug")),
        // An error path: nothing listens there.
        run("http://127.0.0.1:9", &["plan", "stack.yaml", "-vv"], Some("trace")),
    ];
    let mut everything = std::fs::read_to_string(dir.join("plan.json")).unwrap();
    for output in &outputs {
        everything.push_str(&stdout(output));
        everything.push_str(&stderr(output));
    }
    assert_eq!(outputs[1].status.code(), Some(0), "{}", stderr(&outputs[1]));
    assert_eq!(outputs[4].status.code(), Some(1));
    assert!(everything.len() > 10_000, "the runs were verbose enough to mean something");
    assert!(!everything.contains(SECRET), "the secret key leaked");
    assert!(!everything.contains(TOKEN), "the session token leaked");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interrupt_while_planning_starts_nothing_and_releases_the_lock() {
    let moto = Moto::start();
    let dir = stack_dir("early-signal", &StackManifest::direct("early").yaml(), 60);
    // Only discovery is slow, so the interrupt lands while planning.
    let slow_discovery = ["DescribeImages", "DescribeSnapshots"].map(|op| (op.to_string(), Duration::from_millis(300)));
    let faults = Faults { latency_by_operation: slow_discovery.into_iter().collect(), ..Faults::default() };
    let proxy = Proxy::start(&moto.raw, faults, 6).await;
    let child = apply_until(&proxy, &dir, "DescribeSnapshots").await;
    std::process::Command::new("kill").args(["-INT", &child.id().unwrap().to_string()]).status().unwrap();
    let output = child.wait_with_output().await.unwrap();
    expect_code(&output, 130);
    assert!(!proxy.calls().iter().any(|c| c.operation == "StartSnapshot"), "work started after the interrupt");
    assert!(proxy.calls().iter().any(|c| c.operation == "DeleteKeyPair"), "the lock was not released");
    expect_code(&moto.amiplan(&dir, &["apply", "stack.yaml", "--auto-approve"]), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interrupt_while_waiting_for_a_lock_stops_the_wait_at_once() {
    let moto = Moto::start();
    let dir = stack_dir("lock-wait-interrupt", &StackManifest::direct("lwi").yaml(), 41);
    // Someone else holds the stack's lock.
    let holder = aws_sdk_ec2::types::Tag::builder().key("amiplan:lock-holder").value("ci@elsewhere pid 1").build();
    let tags = aws_sdk_ec2::types::TagSpecification::builder()
        .resource_type(aws_sdk_ec2::types::ResourceType::KeyPair)
        .tags(holder)
        .build();
    let ec2 = moto.ec2("us-east-1").await;
    ec2.create_key_pair().key_name("amiplan-lock-lwi").tag_specifications(tags).send().await.unwrap();
    let args = ["apply", "stack.yaml", "--auto-approve", "--lock-timeout", "10m"];
    let child = tokio::process::Command::from(amiplan_command(&moto.endpoint, &dir, &args)).spawn().unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    std::process::Command::new("kill").args(["-INT", &child.id().unwrap().to_string()]).status().unwrap();
    let started = std::time::Instant::now();
    let output = child.wait_with_output().await.unwrap();
    expect_code(&output, 130);
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    assert!(stderr(&output).contains("interrupted while waiting for the lock of stack `lwi`"), "{}", stderr(&output));
    assert!(moto.stack_images("us-east-1", "lwi").await.is_empty(), "nothing was changed");
    let pairs = ec2.describe_key_pairs().key_names("amiplan-lock-lwi").send().await.unwrap();
    assert_eq!(pairs.key_pairs().len(), 1, "the other run's lock is untouched");
}

/// The stack lock recognises itself: CreateKeyPair made the lock but its answer was lost; the
/// retry meets `InvalidKeyPair.Duplicate`, and the lock it finds is this run's own.
#[tokio::test(flavor = "multi_thread")]
async fn a_lock_whose_answer_was_lost_is_recognised_as_this_runs_own() {
    let moto = Moto::start();
    let faults = Faults { lose_first_answer_of: vec!["CreateKeyPair"], ..Faults::default() };
    let proxy = Proxy::start(&moto.raw, faults, 3).await;
    let dir = stack_dir("lost-lock", &StackManifest::small("lostlock").yaml(), 5);
    let applied = amiplan_async(&proxy.endpoint, &dir, &["apply", "stack.yaml", "--auto-approve"]).await;
    expect_code(&applied, 0);
    let creates = proxy.calls().iter().filter(|c| c.operation == "CreateKeyPair").count();
    assert_eq!(creates, 2, "the lost answer was retried");
    assert!(!stderr(&applied).contains("taking over"), "{}", stderr(&applied));
    let ec2 = moto.ec2("us-east-1").await;
    assert!(ec2.describe_key_pairs().send().await.unwrap().key_pairs().is_empty(), "the lock was released");
}

/// A lock is a lease: another host's lock whose lease expired is taken over with a warning that
/// names its holder; one whose lease runs is never overridden.
#[tokio::test(flavor = "multi_thread")]
async fn an_expired_lease_is_taken_over_and_a_live_one_is_respected() {
    let moto = Moto::start();
    let dir = stack_dir("lease", &StackManifest::small("lease").yaml(), 6);
    let ec2 = moto.ec2("us-east-1").await;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let lock = |expires: u64| {
        let tags = [
            ("amiplan:lock-holder", "ci@elsewhere pid 42".to_string()),
            ("amiplan:lock-host", "elsewhere".to_string()),
            ("amiplan:lock-pid", "42".to_string()),
            ("amiplan:lock-run", "someone-else".to_string()),
            ("amiplan:lock-expires", expires.to_string()),
        ];
        let tags: Vec<_> =
            tags.iter().map(|(k, v)| aws_sdk_ec2::types::Tag::builder().key(*k).value(v).build()).collect();
        let spec = aws_sdk_ec2::types::TagSpecification::builder()
            .resource_type(aws_sdk_ec2::types::ResourceType::KeyPair)
            .set_tags(Some(tags))
            .build();
        ec2.create_key_pair().key_name("amiplan-lock-lease").tag_specifications(spec).send()
    };

    lock(now + 600).await.unwrap();
    let refused = amiplan_async(&moto.endpoint, &dir, &["apply", "stack.yaml", "--auto-approve"]).await;
    expect_code(&refused, 1);
    let err = stderr(&refused);
    assert!(err.contains("is locked by ci@elsewhere pid 42") && err.contains("lease until"), "{err}");

    ec2.delete_key_pair().key_name("amiplan-lock-lease").send().await.unwrap();
    lock(now - 60).await.unwrap();
    let applied = amiplan_async(&moto.endpoint, &dir, &["apply", "stack.yaml", "--auto-approve"]).await;
    expect_code(&applied, 0);
    let err = stderr(&applied);
    assert!(err.contains("taking over the lock of stack `lease` from ci@elsewhere pid 42: its lease expired"), "{err}");
}
