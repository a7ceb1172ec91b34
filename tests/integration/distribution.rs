//! The distribution side against moto: the catalogue files, `resolve` (live and from a file) and
//! `serve` agree; the files are the same bytes for the same live state; `serve` revalidates,
//! keeps answering when AWS goes away, and stops on SIGTERM.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::catalog::release;
use crate::support::*;

/// Every file under `root`, by relative path.
fn tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let relative = path.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                files.insert(relative, std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

fn json(files: &BTreeMap<String, Vec<u8>>, path: &str) -> serde_json::Value {
    serde_json::from_slice(files.get(path).unwrap_or_else(|| panic!("no {path} in {:?}", files.keys()))).unwrap()
}

pub struct Answer {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

/// A GET with `headers`, answered whatever its status.
pub async fn get(url: String, headers: Vec<(&'static str, String)>) -> Answer {
    tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let mut request = agent.get(&url);
        for (name, value) in &headers {
            request = request.header(*name, value);
        }
        let mut answer = request.call().unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let headers = answer
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or_default().to_string()))
            .collect();
        let status = answer.status().as_u16();
        Answer { status, headers, body: answer.body_mut().read_to_string().unwrap_or_default() }
    })
    .await
    .unwrap()
}

/// A running `amiplan serve` of `stack.yaml` and where it listens.
pub struct Serving {
    pub server: tokio::process::Child,
    pub base: String,
}

impl Serving {
    /// Starts `amiplan serve` in `dir` on a free loopback port, reading AWS again every
    /// `refresh`, and waits until it has read the catalogue once.
    pub async fn start(endpoint: &str, dir: &Path, refresh: &str) -> Serving {
        let args = ["serve", "stack.yaml", "--listen", "127.0.0.1:0", "--refresh", refresh];
        let mut command = tokio::process::Command::from(amiplan_command(endpoint, dir, &args));
        let mut server = command.stderr(Stdio::piped()).kill_on_drop(true).spawn().unwrap();
        let mut lines = BufReader::new(server.stderr.take().unwrap()).lines();
        let first = lines.next_line().await.unwrap().unwrap_or_default();
        let base = first.split("listening on ").nth(1).and_then(|r| r.split(' ').next());
        let base = base.unwrap_or_else(|| panic!("serve did not start: {first}")).to_string();
        let deadline = Instant::now() + Duration::from_secs(60);
        while get(format!("{base}/healthz"), vec![]).await.status != 200 {
            assert!(Instant::now() < deadline, "serve never read the catalogue");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Serving { server, base }
    }

    /// Stops it as a service manager would, with SIGTERM, and expects a clean exit.
    pub async fn stop(mut self) {
        let pid = self.server.id().unwrap().to_string();
        assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let waited = tokio::time::timeout(Duration::from_secs(20), self.server.wait()).await;
        let status = waited.expect("stops on SIGTERM").unwrap();
        assert!(status.success(), "{status:?}");
    }
}

async fn ami(moto: &Moto, region: &str, name: &str) -> String {
    moto.images_named(region, name).await[0].image_id().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn files_resolve_and_serve_agree_and_serve_outlives_aws() {
    let moto = Moto::start();
    let dir = workdir("distribution");
    let apply = ["apply", "stack.yaml", "--auto-approve", "--regions", "manifest"];
    release(&dir, 1, "stable: \"1\"");
    expect_code(&moto.amiplan(&dir, &apply), 0);
    release(&dir, 2, "stable: \"1\", testing: \"2\"");
    expect_code(&moto.amiplan(&dir, &apply), 0);
    let stable_gp3 = ami(&moto, "eu-west-1", "cat-1-gp3").await;

    // The files: the same live state gives the same bytes, and the documented shapes.
    expect_code(&moto.amiplan(&dir, &["catalog", "stack.yaml", "--out", "tree"]), 0);
    expect_code(&moto.amiplan(&dir, &["catalog", "stack.yaml", "--out", "again"]), 0);
    let files = tree(&dir.join("tree"));
    assert_eq!(files, tree(&dir.join("again")), "byte-identical across runs");
    let index = json(&files, "streams/v1/index.json");
    assert_eq!(index["format"], "index:1.0");
    let entry = &index["index"]["amiplan:cat:aws"];
    assert_eq!((entry["datatype"].as_str(), entry["format"].as_str()), (Some("image-ids"), Some("products:1.0")));
    let products = json(&files, entry["path"].as_str().unwrap());
    assert_eq!((products["format"].as_str(), products["datatype"].as_str()), (Some("products:1.0"), Some("image-ids")));
    assert_eq!(products["content_id"], "amiplan:cat:aws");
    assert!(entry["products"].as_array().unwrap().contains(&serde_json::json!("cat:x86_64")));
    let item = &products["products"]["cat:x86_64"]["versions"]["1"]["items"]["eu-west-1:hvm:gp3:unencrypted"];
    assert_eq!(item["id"], stable_gp3.as_str());
    assert_eq!(
        (item["crsn"].as_str(), item["virt"].as_str(), item["root_store"].as_str()),
        (Some("eu-west-1"), Some("hvm"), Some("ssd"))
    );
    // Canonical's own reader finds the same AMIs in it.
    let read = sstream_query(&dir.join("tree/streams/v1/index.json"), &["crsn=eu-west-1", "version_name=1"]);
    let mut found: Vec<(&str, &str)> =
        read.iter().map(|i| (i["name"].as_str().unwrap(), i["id"].as_str().unwrap())).collect();
    found.sort();
    let standard = ami(&moto, "eu-west-1", "cat-1-standard").await;
    assert_eq!(found, [("cat-1-gp3", stable_gp3.as_str()), ("cat-1-standard", standard.as_str())], "{read:#?}");
    assert!(read.iter().all(|i| i["content_id"] == "amiplan:cat:aws" && i["virt"] == "hvm"), "{read:#?}");
    let stable = json(&files, "streams/cat/stable.json");
    assert_eq!(stable["stream"], "stable");
    let region = &stable["architectures"]["x86_64"]["images"]["aws"]["regions"]["eu-west-1"];
    assert_eq!((region["release"].as_str(), region["image"].as_str()), (Some("1"), Some(stable_gp3.as_str())));
    let testing = json(&files, "streams/cat/testing.json");
    let region = &testing["architectures"]["x86_64"]["images"]["aws"]["regions"]["ap-southeast-2"];
    assert_eq!(region["image"], ami(&moto, "ap-southeast-2", "cat-2-gp3").await.as_str());
    let flat = json(&files, "amis.json");
    assert_eq!(flat["format"], "amiplan-catalogue:1");
    for region in ["us-east-1", "eu-west-1", "ap-southeast-2"] {
        assert_eq!(flat["regions"][region].as_array().unwrap().len(), 4, "two versions × two volume types");
    }
    assert_eq!(json(&files, "versions/cat/2.json")["amis"].as_array().unwrap().len(), 6);

    // resolve, live and from the file, agrees with the files.
    let files_before_retirement = files.clone();
    let query = ["resolve", "stack.yaml", "--region", "eu-west-1", "--arch", "x86_64", "--variant", "volume_type=gp3"];
    let live = moto.amiplan(&dir, &[&query[..], &["--channel", "stable"]].concat());
    expect_code(&live, 0);
    assert_eq!(stdout(&live).trim(), stable_gp3);
    let from_file = amiplan_at(
        "http://127.0.0.1:9",
        &dir,
        &[&query[..], &["--channel", "stable", "--from", "tree/amis.json"]].concat(),
    );
    expect_code(&from_file, 0);
    assert_eq!(stdout(&from_file).trim(), stable_gp3);
    let missing = moto.amiplan(&dir, &[&query[..], &["--channel", "edge"]].concat());
    expect_code(&missing, 1);
    assert!(stderr(&missing).contains("no AMI matches region eu-west-1, arch x86_64, volume_type=gp3, channel edge"));
    let ambiguous = moto.amiplan(&dir, &["resolve", "stack.yaml", "--region", "eu-west-1", "--arch", "x86_64"]);
    expect_code(&ambiguous, 1);
    assert!(
        stderr(&ambiguous).contains("2 AMIs match") && stderr(&ambiguous).contains("cat-2-standard"),
        "{}",
        stderr(&ambiguous)
    );

    // Version 3 retires version 1 (keep 2): it leaves the catalogue files in the same run.
    release(&dir, 3, "stable: \"2\", testing: \"3\"");
    expect_code(&moto.amiplan(&dir, &apply), 0);
    expect_code(&moto.amiplan(&dir, &["catalog", "stack.yaml", "--out", "tree"]), 0);
    let files = tree(&dir.join("tree"));
    let flat = json(&files, "amis.json");
    let versions: std::collections::BTreeSet<&str> =
        flat["regions"]["eu-west-1"].as_array().unwrap().iter().map(|e| e["version"].as_str().unwrap()).collect();
    assert_eq!(versions, ["2", "3"].into(), "{flat:#}");
    assert!(!files.contains_key("versions/cat/1.json") && files.contains_key("versions/cat/3.json"));
    assert_eq!(files["versions/cat/2.json"], files_before_retirement["versions/cat/2.json"], "never rewritten");
    let products = json(&files, "streams/v1/amiplan:cat:aws.json");
    assert!(products["products"]["cat:x86_64"]["versions"].get("1").is_none());
    let stable_gp3 = ami(&moto, "eu-west-1", "cat-2-gp3").await;

    // serve: the same answers from memory; revalidation; stale but serving without AWS; SIGTERM.
    let serving = Serving::start(&moto.endpoint, &dir, "1s").await;
    let base = serving.base.clone();
    let resolve_url = format!("{base}/v1/resolve?region=eu-west-1&arch=x86_64&volume_type=gp3&channel=stable");
    let answer = get(resolve_url.clone(), vec![]).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let resolved: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!((resolved["image_id"].as_str(), resolved["version"].as_str()), (Some(stable_gp3.as_str()), Some("2")));
    let ambiguous = get(format!("{base}/v1/resolve?region=eu-west-1&arch=x86_64"), vec![]).await;
    assert_eq!(ambiguous.status, 409, "{}", ambiguous.body);
    let index = get(format!("{base}/streams/v1/index.json"), vec![]).await;
    assert_eq!(index.status, 200);
    assert_eq!(index.body.as_bytes(), files["streams/v1/index.json"].as_slice(), "serve serves the same files");
    let etag = index.headers["etag"].clone();
    let again = get(format!("{base}/streams/v1/index.json"), vec![("if-none-match", etag)]).await;
    assert_eq!((again.status, again.body.as_str()), (304, ""));
    let since = index.headers["last-modified"].clone();
    assert_eq!(get(format!("{base}/amis.json"), vec![("if-modified-since", since)]).await.status, 304);

    drop(moto);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let health = get(format!("{base}/healthz"), vec![]).await;
        if health.body.contains("\"stale\"") {
            break;
        }
        assert!(Instant::now() < deadline, "never said it was stale: {}", health.body);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let stale = get(resolve_url, vec![]).await;
    assert_eq!(stale.status, 200, "still answering without AWS");
    assert!(stale.body.contains(&stable_gp3) && stale.headers.contains_key("warning"), "{:?}", stale.headers);

    serving.stop().await;
}
