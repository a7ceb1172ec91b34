//! Shared by the benchmarks: timing a command with /usr/bin/time, and writing stacks.

use std::path::Path;
use std::process::Command;

/// Wall seconds, CPU seconds (user + system) and peak RSS in MiB of one command.
#[derive(Debug, Clone, Copy)]
pub struct Measured {
    pub wall: f64,
    pub cpu: f64,
    pub peak_rss_mib: f64,
}

/// Runs `command` under GNU time and reads its figures; panics if the command fails.
pub fn measure(command: Command) -> (Measured, std::process::Output) {
    let figures = std::env::temp_dir().join(format!("amiplan-bench-time-{}", std::process::id()));
    let program = command.get_program().to_owned();
    let args: Vec<_> = command.get_args().map(|a| a.to_owned()).collect();
    let mut timed = Command::new("/usr/bin/time");
    timed.arg("-f").arg("%e %U %S %M").arg("-o").arg(&figures).arg(program).args(args);
    if let Some(dir) = command.get_current_dir() {
        timed.current_dir(dir);
    }
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => timed.env(key, value),
            None => timed.env_remove(key),
        };
    }
    let output = timed.output().expect("/usr/bin/time runs");
    assert!(
        output.status.success(),
        "benchmarked command failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let text = std::fs::read_to_string(&figures).unwrap();
    let numbers: Vec<f64> = text.lines().last().unwrap().split_whitespace().map(|n| n.parse().unwrap()).collect();
    let measured = Measured { wall: numbers[0], cpu: numbers[1] + numbers[2], peak_rss_mib: numbers[3] / 1024.0 };
    (measured, output)
}

pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    values[values.len() / 2]
}

/// A stack of `volume_types` variants in `regions`, built in the first region.
pub fn write_stack(dir: &Path, stack: &str, volume_types: &[&str], encrypted: &[bool], regions: &[&str]) {
    let text = format!(
        "stack: {stack}\nsource: {{ file: disk.raw }}\nbuild: {{ region: {} }}\nimage:\n  name: \"{stack}-{{volume_type}}-{{encryption}}\"\n  architecture: x86_64\nvariants:\n  volume_type: [{}]\n  encrypted: [{}]\nregions: [{}]\n",
        regions[0],
        volume_types.join(", "),
        encrypted.iter().map(|e| e.to_string()).collect::<Vec<_>>().join(", "),
        regions.join(", ")
    );
    std::fs::write(dir.join(format!("{stack}.yaml")), text).unwrap();
}

pub const FIFTEEN_REGIONS: [&str; 15] = [
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eu-central-1",
    "eu-north-1",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-south-1",
    "sa-east-1",
];
