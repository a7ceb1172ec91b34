//! `amiplan serve` under load: a catalogue of 10,000 AMIs, the server alone on one core (taskset
//! -c 0, one-threaded runtime), a load generator on the other core. Reports requests per second,
//! latency percentiles and the server's resident memory while it answers and refreshes its view
//! every second.
//!
//! The view comes from a refresh function that builds the catalogue in memory, as a refresh from
//! AWS would end, and moves the `testing` channel every time, so that every refresh (each second)
//! rebuilds the view: what is measured is serving while refreshing, never AWS.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use amiplan::distribution::serve::{Refresh, serve};
use amiplan::distribution::{Catalogue, Entry};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

const REGIONS: usize = 20;
const VERSIONS: usize = 125;
const VOLUME_TYPES: [&str; 2] = ["gp3", "standard"];
const ENCRYPTED: [bool; 2] = [false, true];
const CONNECTIONS: usize = 32;
const SECONDS: u64 = 10;
const RUNS: usize = 5;

fn region(i: usize) -> String {
    format!("region-{i:02}")
}

/// 20 regions × 125 versions × 4 variants = 10,000 AMIs; `stable` on version 100, `testing` on
/// the newest or the one before (`flip`), so that every refresh has something new to build.
fn catalogue(flip: bool) -> Catalogue {
    let testing = if flip { VERSIONS - 1 } else { VERSIONS };
    let mut entries = Vec::new();
    for r in 0..REGIONS {
        for v in 1..=VERSIONS {
            for volume_type in VOLUME_TYPES {
                for encrypted in ENCRYPTED {
                    let mut channels = vec![];
                    if v == 100 {
                        channels.push("stable".to_string());
                    }
                    if v == testing {
                        channels.push("testing".to_string());
                    }
                    entries.push(Entry {
                        stack: "bench".into(),
                        region: region(r),
                        version: format!("{v}"),
                        arch: "x86_64".into(),
                        virtualization: "hvm".into(),
                        volume_type: volume_type.into(),
                        encrypted,
                        boot_mode: Some("uefi-preferred".into()),
                        image_id: format!("ami-{:017x}", entries.len()),
                        name: format!("bench-{v}-{volume_type}-{encrypted}"),
                        created: Some(format!("2026-{:02}-{:02}T00:00:00Z", 1 + v / 28 % 12, 1 + v % 28)),
                        deprecation: None,
                        public: true,
                        channels,
                    });
                }
            }
        }
    }
    entries.sort();
    Catalogue { entries }
}

/// The server process: one core, one thread.
fn run_server(port_file: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        std::fs::write(port_file, listener.local_addr().unwrap().port().to_string()).unwrap();
        let flips = Arc::new(AtomicBool::new(false));
        let refresh: Refresh = Box::new(move || {
            let flip = !flips.fetch_xor(true, Ordering::Relaxed);
            Box::pin(async move { Ok(catalogue(flip)) })
        });
        serve(listener, refresh, Duration::from_secs(1), std::future::pending()).await.unwrap();
    });
}

fn rss_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// The requests of the mix: resolves by channel, version and latest across regions and
/// variants, and revalidations of the simplestreams index.
fn paths(etag: &str) -> Vec<(String, Option<String>)> {
    let mut paths = Vec::new();
    for r in 0..REGIONS {
        for (volume_type, query) in [("gp3", "channel=stable"), ("standard", "channel=testing"), ("gp3", "version=42")]
        {
            let url = format!(
                "/v1/resolve?region={}&arch=x86_64&volume_type={volume_type}&encryption=unencrypted&{query}",
                region(r)
            );
            paths.push((url, None));
        }
    }
    paths.push(("/streams/v1/index.json".to_string(), Some(etag.to_string())));
    paths
}

struct Run {
    requests: usize,
    seconds: f64,
    latencies: Vec<Duration>,
    rss: Vec<f64>,
    hwm: f64,
}

async fn load(port: u16, server: u32) -> Run {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let base = format!("http://127.0.0.1:{port}");
    let index = client.get(format!("{base}/streams/v1/index.json").parse().unwrap()).await.unwrap();
    let etag = index.headers()["etag"].to_str().unwrap().to_string();
    let paths = Arc::new(paths(&etag));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let workers: Vec<_> = (0..CONNECTIONS)
        .map(|worker| {
            let (client, paths, stop, base) = (client.clone(), Arc::clone(&paths), Arc::clone(&stop), base.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut i = worker;
                while !stop.load(Ordering::Relaxed) {
                    let (path, etag) = &paths[i % paths.len()];
                    i += 7;
                    let mut request = hyper::Request::get(format!("{base}{path}"));
                    if let Some(etag) = etag {
                        request = request.header("if-none-match", etag);
                    }
                    let sent = Instant::now();
                    let answer = client.request(request.body(Empty::new()).unwrap()).await.unwrap();
                    let status = answer.status().as_u16();
                    answer.into_body().collect().await.unwrap();
                    assert!(status == 200 || status == 304, "{path}: {status}");
                    latencies.push(sent.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut rss = Vec::new();
    while started.elapsed() < Duration::from_secs(SECONDS) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        rss.push(rss_mib(server).0);
    }
    stop.store(true, Ordering::Relaxed);
    let seconds = started.elapsed().as_secs_f64();
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.await.unwrap());
    }
    Run { requests: latencies.len(), seconds, latencies, rss, hwm: rss_mib(server).1 }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(position) = args.iter().position(|a| a == "--serve") {
        return run_server(&args[position + 1]);
    }
    // The load generator runs on the other core.
    if std::env::var_os("AMIPLAN_BENCH_PINNED").is_none() {
        let me = std::env::current_exe().unwrap();
        let status = Command::new("taskset")
            .args(["-c", "1"])
            .arg(me)
            .args(&args[1..])
            .env("AMIPLAN_BENCH_PINNED", "1")
            .status()
            .expect("taskset runs");
        std::process::exit(status.code().unwrap_or(1));
    }
    let port_file = std::env::temp_dir().join(format!("amiplan-serve-bench-{}", std::process::id()));
    let _ = std::fs::remove_file(&port_file);
    let me = std::env::current_exe().unwrap();
    let mut server = Command::new("taskset")
        .args(["-c", "0"])
        .arg(me)
        .args(["--serve", port_file.to_str().unwrap()])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let port: u16 = loop {
        if let Ok(text) = std::fs::read_to_string(&port_file)
            && let Ok(port) = text.trim().parse()
        {
            break port;
        }
        assert!(Instant::now() < deadline, "the server did not start");
        std::thread::park_timeout(Duration::from_millis(50));
    };
    // The server's own pid: taskset execs it.
    let pid = server.id();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let mut results: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    runtime.block_on(async {
        let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
        loop {
            let health = client.get(format!("http://127.0.0.1:{port}/healthz").parse().unwrap()).await;
            if health.is_ok_and(|h| h.status() == 200) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let idle = rss_mib(pid).0;
        println!("catalogue: {} AMIs; server RSS once loaded: {idle:.1} MiB", REGIONS * VERSIONS * 4);
        println!("| run | requests/s | p50 ms | p99 ms | max ms | RSS min–max MiB | peak RSS MiB |");
        println!("|---|---|---|---|---|---|---|");
        for run in 1..=RUNS {
            let mut measured = load(port, pid).await;
            measured.latencies.sort();
            let rate = measured.requests as f64 / measured.seconds;
            let (p50, p99) = (percentile(&measured.latencies, 0.50), percentile(&measured.latencies, 0.99));
            let max = percentile(&measured.latencies, 1.0);
            let low = measured.rss.iter().cloned().fold(f64::MAX, f64::min);
            let high = measured.rss.iter().cloned().fold(0.0, f64::max);
            println!(
                "| {run} | {rate:.0} | {p50:.2} | {p99:.2} | {max:.2} | {low:.1}–{high:.1} | {:.1} |",
                measured.hwm
            );
            results.entry("rate").or_default().push(rate);
            results.entry("p99").or_default().push(p99);
            results.entry("hwm").or_default().push(measured.hwm);
        }
    });
    let median = |mut v: Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    };
    println!(
        "median of {RUNS}: {:.0} requests/s, p99 {:.2} ms, peak RSS {:.1} MiB",
        median(results["rate"].clone()),
        median(results["p99"].clone()),
        median(results["hwm"].clone())
    );
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_file(&port_file);
}
