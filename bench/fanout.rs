//! Fan-out: one build, copies to 14 more regions, 200 ms added to every call. Apply wall time
//! against the critical path (one upload, one registration, one copy chain) and against the sum
//! of all node durations; and the most copies in flight per destination region.

#![allow(dead_code)]

#[path = "../tests/integration/call_record.rs"]
mod call_record;
#[path = "common.rs"]
mod common;
#[path = "../tests/integration/proxy.rs"]
mod proxy;
#[path = "../tests/integration/support.rs"]
mod support;

use std::time::Duration;

use common::*;
use support::*;

#[tokio::main]
async fn main() {
    // The tests' call record would add reads of moto to what is measured.
    call_record::stop_recording();
    let moto = Moto::start();
    let dir = workdir("bench-fanout");
    sample_image(&dir.join("disk.raw"), 4, 2);
    // 6 variants: more copies per destination region than the per-region limit of 4 in flight.
    write_stack(&dir, "fan", &["gp3", "gp2", "standard"], &[false, true], &FIFTEEN_REGIONS);
    let faults = proxy::Faults {
        latency: Duration::from_millis(200),
        rules: proxy::rules::Rules::none(),
        ..proxy::Faults::default()
    };
    let proxy = proxy::Proxy::start(&moto.raw, faults, 7).await;
    let command = amiplan_command(
        &proxy.endpoint,
        &dir,
        &["apply", "fan.yaml", "--auto-approve", "--json", "--regions", "manifest"],
    );
    let (measured, output) = tokio::task::spawn_blocking(move || measure(command)).await.unwrap();
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let nodes = report["nodes"].as_array().unwrap();
    let seconds = |kind: &str| -> Vec<f64> {
        nodes
            .iter()
            .filter(|n| n["node"].as_str().unwrap().starts_with(kind))
            .map(|n| n["seconds"].as_f64().unwrap())
            .collect()
    };
    let max = |v: Vec<f64>| v.into_iter().fold(0.0, f64::max);
    let build_images: Vec<f64> = nodes
        .iter()
        .filter(|n| n["region"] == "us-east-1" && n["node"].as_str().unwrap().starts_with("image/"))
        .map(|n| n["seconds"].as_f64().unwrap())
        .collect();
    // The executor's window on the wire: from the upload's first call to the last call before the
    // lock is released. Before it: STS, the lock and discovery in 15 regions.
    let calls = proxy.calls();
    let first = calls.iter().find(|c| c.operation == "StartSnapshot").unwrap().at;
    let last = calls.iter().rev().find(|c| c.operation != "DeleteKeyPair").unwrap().at;
    let window = (last - first).as_secs_f64();
    if std::env::var_os("AMIPLAN_BENCH_TIMELINE").is_some() {
        for call in calls.iter().take_while(|c| c.operation != "StartSnapshot") {
            eprintln!("{:>6.2}s {} {}", (call.at - calls[0].at).as_secs_f64(), call.region, call.operation);
        }
    }
    // Its lower bound: the upload, the slowest registration, then in the slowest region its
    // copies packed onto 4 slots (longest first), as the per-region limit forces.
    let mut slowest_region: f64 = 0.0;
    for region in &FIFTEEN_REGIONS[1..] {
        let mut durations: Vec<f64> = nodes
            .iter()
            .filter(|n| n["region"] == *region && n["node"].as_str().unwrap().starts_with("image/"))
            .map(|n| n["seconds"].as_f64().unwrap())
            .collect();
        durations.sort_by(|a, b| b.partial_cmp(a).unwrap());
        let mut slots = [0.0f64; 4];
        for duration in durations {
            let least = slots.iter_mut().min_by(|a, b| a.partial_cmp(b).unwrap()).unwrap();
            *least += duration;
        }
        slowest_region = slowest_region.max(slots.iter().cloned().fold(0.0, f64::max));
    }
    let critical = max(seconds("snapshot/")) + max(build_images) + slowest_region;
    let sum: f64 = nodes.iter().map(|n| n["seconds"].as_f64().unwrap()).sum();
    let most_copies = FIFTEEN_REGIONS[1..].iter().map(|r| proxy.most_in_flight("CopyImage", r)).max().unwrap();
    println!(
        "| nodes | apply wall | executor window | critical path | sum of node times | window / critical | window / sum | most copies in flight per region |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {:.1} s | {:.1} s | {:.1} s | {:.1} s | {:.2} | {:.3} | {most_copies} (limit 4; AWS allows 5) |",
        nodes.len(),
        measured.wall,
        window,
        critical,
        sum,
        window / critical,
        window / sum
    );
    assert!(most_copies <= 4);
}
