//! Plan at scale: 5 stacks × 4 variants × 15 regions = 300 AMIs already applied; how long does a
//! plan take, how much of it is amiplan itself, and how many calls does it make per region?

#![allow(dead_code)]

#[path = "../tests/integration/call_record.rs"]
mod call_record;
#[path = "common.rs"]
mod common;
#[path = "../tests/integration/proxy.rs"]
mod proxy;
#[path = "../tests/integration/support.rs"]
mod support;

use std::collections::BTreeMap;

use common::*;
use support::*;

#[tokio::main]
async fn main() {
    // The tests' call record would add reads of moto to what is measured.
    call_record::stop_recording();
    let moto = Moto::start();
    let dir = workdir("bench-plan");
    sample_image(&dir.join("disk.raw"), 2, 1);
    let stacks: Vec<String> = (1..=5).map(|i| format!("scale{i}")).collect();
    for stack in &stacks {
        write_stack(&dir, stack, &["gp3", "standard"], &[false, true], &FIFTEEN_REGIONS);
        let file = format!("{stack}.yaml");
        let apply =
            amiplan_async(&moto.endpoint, &dir, &["apply", &file, "--auto-approve", "--regions", "manifest"]).await;
        assert!(apply.status.success(), "{}", String::from_utf8_lossy(&apply.stderr));
    }
    println!("| AMIs planned | wall (median of 5) | amiplan CPU | calls per region (EC2) | changes |");
    println!("|---|---|---|---|---|");
    for count in [1usize, 5] {
        let files: Vec<String> = stacks[..count].iter().map(|s| format!("{s}.yaml")).collect();
        let mut walls = Vec::new();
        let mut cpus = Vec::new();
        let mut per_region = BTreeMap::new();
        for round in 0..5 {
            let faults = proxy::Faults { rules: proxy::rules::Rules::none(), ..proxy::Faults::default() };
            let proxy = proxy::Proxy::start(&moto.raw, faults, round).await;
            let mut args: Vec<&str> = vec!["plan", "--regions", "manifest", "--detailed-exitcode"];
            args.extend(files.iter().map(String::as_str));
            let command = amiplan_command(&proxy.endpoint, &dir, &args);
            let (measured, _) = tokio::task::spawn_blocking(move || measure(command)).await.unwrap();
            walls.push(measured.wall);
            cpus.push(measured.cpu);
            per_region.clear();
            for call in proxy.calls().iter().filter(|c| c.service == "ec2") {
                *per_region.entry(call.region.clone()).or_insert(0usize) += 1;
                assert!(!call.is_mutating());
            }
        }
        let calls: Vec<usize> = per_region.values().copied().collect();
        let (low, high) = (calls.iter().min().unwrap(), calls.iter().max().unwrap());
        println!("| {} | {:.2} s | {:.2} s | {low}–{high} | none |", count * 60, median(walls), median(cpus));
    }
}
