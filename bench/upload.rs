//! Direct upload: amiplan against `coldsnap upload --omit-zero-blocks` (how coldsnap's users
//! upload sparse images), in one run, alternating the tools, medians of `AMIPLAN_BENCH_RUNS`
//! (default 5). `AMIPLAN_BENCH_IMAGES` picks images by file name (comma-separated, each whole:
//! `dense.raw,sparse.raw`), `AMIPLAN_BENCH_SINKS` sinks (`moto`, `sink`).
//!
//! Two sinks: moto through the proxy (a fresh moto per run: it keeps every block in memory), and
//! the proxy's EBS sink, which checks every block's checksum and the final aggregate itself and
//! stores nothing, so that what is measured is the client. Images: 2 GiB with 30% random and 70%
//! zero blocks (zeros written, not holes), an 8 GiB sparse file with 300 MiB of data, and the
//! 2 GiB image as `.raw.xz` and `.raw.zst` (coldsnap cannot read those: its users unpack first,
//! which is timed as part of its run). amiplan runs a whole `apply` of a one-variant stack with
//! an empty source cache (so it reads the image), and its snapshot node is reported alone too.

#![allow(dead_code)]

#[path = "../tests/integration/call_record.rs"]
mod call_record;
#[path = "common.rs"]
mod common;
#[path = "../tests/integration/proxy.rs"]
mod proxy;
#[path = "../tests/integration/support.rs"]
mod support;

use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use support::*;

const MIB: u64 = 1024 * 1024;

/// Every block whose index is divisible by 10, or is 3 or 7 modulo 10, holds random data (30%).
fn dense_image(path: &Path, size: u64) {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut rng = fastrand::Rng::with_seed(42);
    let mut block = vec![0u8; BLOCK];
    let zeros = vec![0u8; BLOCK];
    for index in 0..size / BLOCK as u64 {
        if matches!(index % 10, 0 | 3 | 7) {
            rng.fill(&mut block);
            file.write_all(&block).unwrap();
        } else {
            file.write_all(&zeros).unwrap();
        }
    }
}

/// `size` bytes, holes but for `data` bytes of random blocks spread evenly.
fn sparse_image(path: &Path, size: u64, data: u64) {
    let mut file = std::fs::File::create(path).unwrap();
    file.set_len(size).unwrap();
    let mut rng = fastrand::Rng::with_seed(43);
    let mut block = vec![0u8; BLOCK];
    let blocks = data / BLOCK as u64;
    let stride = size / BLOCK as u64 / blocks;
    for i in 0..blocks {
        rng.fill(&mut block);
        file.seek(SeekFrom::Start(i * stride * BLOCK as u64)).unwrap();
        file.write_all(&block).unwrap();
    }
}

fn compress(dir: &Path, raw: &str, program: &str, args: &[&str], out: &str) {
    let target = std::fs::File::create(dir.join(out)).unwrap();
    let status = Command::new(program).args(args).arg(dir.join(raw)).stdout(target).status().unwrap();
    assert!(status.success(), "{program} failed");
}

fn tool(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/.tools/bin").join(name);
    assert!(path.exists(), "run scripts/bench, which installs coldsnap into bench/.tools");
    path
}

fn write_stack(dir: &Path, file: &str) {
    let text = format!(
        "stack: up\nsource: {{ file: {file} }}\nbuild: {{ region: us-east-1 }}\nimage:\n  name: upload-bench\n  architecture: x86_64\nvariants:\n  volume_type: [gp3]\nregions: [us-east-1]\n"
    );
    std::fs::write(dir.join("up.yaml"), text).unwrap();
}

/// One run's figures.
struct Run {
    wall: f64,
    cpu: f64,
    rss: f64,
    /// amiplan only: the snapshot node's own seconds, from the events.
    node: Option<f64>,
    /// The most PutSnapshotBlock requests the proxy saw within one second (EBS accepts 1,000
    /// per snapshot).
    busiest: usize,
}

async fn run_amiplan(endpoint: &str, dir: &Path, file: &str) -> Run {
    write_stack(dir, file);
    let _ = std::fs::remove_dir_all(dir.join(".amiplan-cache"));
    let _ = std::fs::remove_file(dir.join("events.jsonl"));
    let command = amiplan_command(
        endpoint,
        dir,
        &["apply", "up.yaml", "--auto-approve", "--regions", "manifest", "--events", "events.jsonl"],
    );
    let (measured, _) = tokio::task::spawn_blocking(move || measure(command)).await.unwrap();
    let events = std::fs::read_to_string(dir.join("events.jsonl")).unwrap();
    let node = events
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .find(|e| e["event"] == "succeeded" && e["node"].as_str().is_some_and(|n| n.starts_with("snapshot/")))
        .and_then(|e| e["seconds"].as_f64());
    Run { wall: measured.wall, cpu: measured.cpu, rss: measured.peak_rss_mib, node, busiest: 0 }
}

/// coldsnap as its users run it; a compressed image is unpacked first, as they must.
async fn run_coldsnap(endpoint: &str, dir: &Path, file: &str) -> Run {
    // Unpacked next to the compressed file under a name of its own: the originals stay.
    let unpacker = match file.rsplit_once('.') {
        Some((_, "xz")) => Some("xz"),
        Some((_, "zst")) => Some("zstd"),
        _ => None,
    };
    let raw = if unpacker.is_some() { "unpacked.raw".to_string() } else { file.to_string() };
    let mut total = Run { wall: 0.0, cpu: 0.0, rss: 0.0, node: None, busiest: 0 };
    if let Some(program) = unpacker {
        let mut command = Command::new("sh");
        command.args(["-c", &format!("{program} -d -c -q {file} > {raw}")]).current_dir(dir);
        let (measured, _) = tokio::task::spawn_blocking(move || measure(command)).await.unwrap();
        assert!(dir.join(&raw).exists());
        total = Run { wall: measured.wall, cpu: measured.cpu, rss: measured.peak_rss_mib, node: None, busiest: 0 };
    }
    let mut command = amiplan_command(endpoint, dir, &[]);
    command.env("AWS_REGION", "us-east-1");
    let mut coldsnap = Command::new(tool("coldsnap"));
    coldsnap.args(["upload", "--omit-zero-blocks", &raw]).current_dir(dir);
    for (key, value) in command.get_envs() {
        if let Some(value) = value {
            coldsnap.env(key, value);
        }
    }
    let (measured, _) = tokio::task::spawn_blocking(move || measure(coldsnap)).await.unwrap();
    if unpacker.is_some() {
        std::fs::remove_file(dir.join(&raw)).unwrap();
    }
    Run {
        wall: total.wall + measured.wall,
        cpu: total.cpu + measured.cpu,
        rss: total.rss.max(measured.peak_rss_mib),
        node: None,
        busiest: 0,
    }
}

/// moto builds its EC2 backend (every region's AMI catalogue) on the first EC2 call: a second or
/// more that no AWS endpoint costs, and that would land on whichever tool calls EC2 first. It is
/// paid before the clock starts.
async fn warm(moto: &Moto) {
    let ec2 = moto.ec2("us-east-1").await;
    ec2.describe_images().owners("self").send().await.unwrap();
    ec2.describe_snapshots().owner_ids("self").send().await.unwrap();
}

fn faults(sink: bool) -> proxy::Faults {
    proxy::Faults {
        aws_block_size: true,
        ebs_sink: sink,
        rules: proxy::rules::Rules::none(),
        ..proxy::Faults::default()
    }
}

#[tokio::main]
async fn main() {
    // The tests' call record would add reads of moto to what is measured.
    call_record::stop_recording();
    let runs: usize = std::env::var("AMIPLAN_BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    let only: Option<String> = std::env::var("AMIPLAN_BENCH_IMAGES").ok();
    // `moto`, `sink` or both (the default).
    let sinks: String = std::env::var("AMIPLAN_BENCH_SINKS").unwrap_or_else(|_| "moto,sink".into());
    let dir = workdir("bench-upload");
    let images: Vec<(&str, &str, u64)> = vec![
        ("2 GiB, 70% zero blocks", "dense.raw", 2048 * MIB),
        ("8 GiB sparse, 300 MiB data", "sparse.raw", 8192 * MIB),
        ("2 GiB as .raw.xz", "dense.raw.xz", 2048 * MIB),
        ("2 GiB as .raw.zst", "dense.raw.zst", 2048 * MIB),
    ];
    dense_image(&dir.join("dense.raw"), 2048 * MIB);
    sparse_image(&dir.join("sparse.raw"), 8192 * MIB, 300 * MIB);
    compress(&dir, "dense.raw", "xz", &["-T2", "-1", "-c"], "dense.raw.xz");
    compress(&dir, "dense.raw", "zstd", &["-T2", "-3", "-c", "-q"], "dense.raw.zst");

    println!(
        "| sink | image | tool | wall | image GiB/s | CPU s | CPU s per image GiB | peak RSS | snapshot node | busiest second |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for sink in [false, true] {
        if !sinks.contains(if sink { "sink" } else { "moto" }) {
            continue;
        }
        for (label, file, size) in &images {
            if only.as_deref().is_some_and(|names| !names.split(',').any(|name| name.trim() == *file)) {
                continue;
            }
            let mut amiplan = Vec::new();
            let mut coldsnap = Vec::new();
            for _ in 0..runs {
                for which in ["amiplan", "coldsnap"] {
                    let moto = Moto::start();
                    warm(&moto).await;
                    let proxy = proxy::Proxy::start(&moto.raw, faults(sink), 1).await;
                    let (runs, mut run) = match which {
                        "amiplan" => (&mut amiplan, run_amiplan(&proxy.endpoint, &dir, file).await),
                        _ => (&mut coldsnap, run_coldsnap(&proxy.endpoint, &dir, file).await),
                    };
                    run.busiest = proxy.busiest_second("PutSnapshotBlock");
                    runs.push(run);
                }
            }
            let sink_name = if sink { "EBS sink" } else { "moto" };
            for (name, runs) in [("amiplan apply", &amiplan), ("coldsnap --omit-zero-blocks", &coldsnap)] {
                let wall = median(runs.iter().map(|r| r.wall).collect());
                let cpu = median(runs.iter().map(|r| r.cpu).collect());
                let rss = median(runs.iter().map(|r| r.rss).collect());
                let gib = *size as f64 / (1024.0 * MIB as f64);
                let node = runs.iter().filter_map(|r| r.node).collect::<Vec<_>>();
                let node = if node.is_empty() { "–".to_string() } else { format!("{:.2} s", median(node)) };
                let busiest = runs.iter().map(|r| r.busiest).max().unwrap_or(0);
                println!(
                    "| {sink_name} | {label} | {name} | {wall:.2} s | {:.2} | {cpu:.2} | {:.2} | {rss:.0} MiB | {node} | {busiest} |",
                    gib / wall,
                    cpu / gib
                );
            }
        }
    }

    // A second plan of an unchanged image reads none of it. Saved plans (`--out`), since a plain
    // plan with nothing live leaves a raw image for its upload and reads nothing either way.
    let moto = Moto::start();
    warm(&moto).await;
    write_stack(&dir, "sparse.raw");
    let _ = std::fs::remove_dir_all(dir.join(".amiplan-cache"));
    for attempt in ["first plan --out (reads the image)", "second plan --out (unchanged image)"] {
        // Straight to moto: the tests' rules proxy plays AWS's faults, which are not what this measures.
        let args = ["plan", "up.yaml", "--regions", "manifest", "--out", "saved.json"];
        let command = amiplan_command(&moto.raw, &dir, &args);
        let (measured, output) = tokio::task::spawn_blocking(move || measure(command)).await.unwrap();
        let said = String::from_utf8_lossy(&output.stdout);
        let line = said.lines().find(|l| l.starts_with("Source of")).unwrap_or_default().to_string();
        println!("\n8 GiB sparse, {attempt}: {:.2} s wall, {:.2} s CPU — {line}", measured.wall, measured.cpu);
    }
}
