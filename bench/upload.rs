//! Direct upload: a raw image with about 70% zero blocks into a snapshot, amiplan against
//! `coldsnap upload`, on the same emulator through the same proxy. Wall time, throughput of the
//! image size, and peak RSS; amiplan also at a quarter of the size, to show memory does not grow
//! with the image.

#![allow(dead_code)]

#[path = "common.rs"]
mod common;
#[path = "../tests/integration/proxy.rs"]
mod proxy;
#[path = "../tests/integration/support.rs"]
mod support;

use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use common::*;
use support::*;

const MIB: u64 = 1024 * 1024;

/// A sparse file of `size` bytes where every block whose index is divisible by 10 or is 3 or 7
/// modulo 10 holds random data (30%), the rest zeros.
fn image(path: &Path, size: u64) {
    let mut file = std::fs::File::create(path).unwrap();
    file.set_len(size).unwrap();
    let mut rng = fastrand::Rng::with_seed(42);
    let mut block = vec![0u8; BLOCK];
    for index in 0..size / BLOCK as u64 {
        if matches!(index % 10, 0 | 3 | 7) {
            rng.fill(&mut block);
            file.seek(SeekFrom::Start(index * BLOCK as u64)).unwrap();
            file.write_all(&block).unwrap();
        }
    }
}

fn coldsnap() -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/.tools/bin/coldsnap");
    assert!(path.exists(), "run scripts/bench, which installs coldsnap into bench/.tools");
    path
}

#[tokio::main]
async fn main() {
    let gib: u64 = std::env::var("AMIPLAN_BENCH_UPLOAD_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(2048);
    println!("| tool | image | wall | throughput (image size / wall) | peak RSS |");
    println!("|---|---|---|---|---|");
    for (tool, size_mib) in [("amiplan", gib / 4), ("amiplan", gib), ("coldsnap 0.12", gib)] {
        // A fresh emulator per run: moto keeps every block in memory.
        let moto = Moto::start();
        // moto as it is: the reference tool must not pay for amiplan's test world.
        let faults =
            proxy::Faults { aws_block_size: true, rules: proxy::rules::Rules::none(), ..proxy::Faults::default() };
        let proxy = proxy::Proxy::start(&moto.raw, faults, 1).await;
        let dir = workdir(&format!("bench-upload-{tool}-{size_mib}").replace(' ', "-"));
        image(&dir.join("disk.raw"), size_mib * MIB);
        let command = if tool == "amiplan" {
            write_stack(&dir, "up", &["gp3"], &[false], &["us-east-1"]);
            amiplan_command(&proxy.endpoint, &dir, &["apply", "up.yaml", "--auto-approve", "--regions", "manifest"])
        } else {
            let mut command = amiplan_command(&proxy.endpoint, &dir, &[]);
            command.env("AWS_REGION", "us-east-1");
            let mut coldsnap_command = std::process::Command::new(coldsnap());
            coldsnap_command.args(["upload", "disk.raw"]).current_dir(&dir);
            for (key, value) in command.get_envs() {
                if let Some(value) = value {
                    coldsnap_command.env(key, value);
                }
            }
            coldsnap_command
        };
        let (measured, _) = tokio::task::spawn_blocking(move || measure(command)).await.unwrap();
        let puts = proxy.calls().iter().filter(|c| c.operation == "PutSnapshotBlock").count();
        println!(
            "| {tool} | {size_mib} MiB, {puts} blocks sent | {:.1} s | {:.0} MiB/s | {:.0} MiB |",
            measured.wall,
            size_mib as f64 / measured.wall,
            measured.peak_rss_mib
        );
        std::fs::remove_file(dir.join("disk.raw")).unwrap();
    }
}
