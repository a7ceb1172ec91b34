//! A boot test's reports: the directory its script leaves, sent back on the console in numbered
//! base64 lines or uploaded to a bucket through a presigned URL, and read back by amiplan.

use base64::Engine as _;
use sha2::{Digest, Sha256};

/// The most a report archive may take on the console: EC2 keeps only the last 64 KiB, and the
/// base64 lines (with their markers) take about 1.45 times the archive.
pub const MAX_REPORTS_BYTES: usize = 24 * 1024;
const REPORT_MARKER: &str = "AMIPLAN-REPORT";
const REPORT_END_MARKER: &str = "AMIPLAN-REPORT-END";

/// Sends the reports directory as a gzipped tar, base64 in numbered console lines, then its size
/// and SHA-256; a directory too large for the console is named, not sent.
pub(super) const SEND_REPORTS: &str = r#"STEP="send the reports"
REPORTS='@@REPORTS@@'
if [ -d "$REPORTS" ]; then
  tar -czf "$WORK/reports.tar.gz" -C "$REPORTS" . 2>/dev/null || say "could not archive $REPORTS"
  size=$(stat -c %s "$WORK/reports.tar.gz" 2>/dev/null || echo 0)
  if [ "$size" -gt 24576 ]; then
    say "the reports in $REPORTS take $size bytes compressed, more than the console carries (24576): not sent"
  elif [ "$size" -gt 0 ]; then
    digest=$(sha256sum "$WORK/reports.tar.gz" | cut -d' ' -f1)
    n=0
    base64 -w 76 "$WORK/reports.tar.gz" | while IFS= read -r line; do
      n=$((n + 1))
      printf 'AMIPLAN-REPORT %s %d %s\n' "$JOB" "$n" "$line" >>"$CONSOLE"
    done
    printf 'AMIPLAN-REPORT-END %s %s %s\n' "$JOB" "$size" "$digest" >>"$CONSOLE"
  fi
else
  say "no reports: $REPORTS does not exist"
fi
"#;

/// What a boot test collects: a directory in the instance, sent on the console or uploaded to a
/// bucket through a presigned URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestReports {
    pub directory: String,
    pub through_bucket: bool,
}

const STORED_MARKER: &str = "AMIPLAN-REPORT-STORED";
const LOST_MARKER: &str = "AMIPLAN-REPORT-LOST";

/// Uploads the reports directory as a gzipped tar with one PUT to the presigned URL (with curl,
/// or with python3 where an image has no curl, as minimal cloud images with cloud-init do), then
/// names its size and SHA-256 on the console (or why it could not be sent).
pub(super) const UPLOAD_REPORTS: &str = r#"STEP="upload the reports"
REPORTS='@@REPORTS@@'
REPORTS_URL='@@REPORTS_URL@@'
if [ -d "$REPORTS" ]; then
  if ! tar -czf "$WORK/reports.tar.gz" -C "$REPORTS" . 2>/dev/null; then
    printf 'AMIPLAN-REPORT-LOST %s could not archive %s\n' "$JOB" "$REPORTS" >>"$CONSOLE"
  elif ! command -v curl >/dev/null 2>&1 && ! command -v python3 >/dev/null 2>&1; then
    printf 'AMIPLAN-REPORT-LOST %s the instance has neither curl nor python3 to upload them\n' "$JOB" >>"$CONSOLE"
  else
    size=$(stat -c %s "$WORK/reports.tar.gz")
    digest=$(sha256sum "$WORK/reports.tar.gz" | cut -d' ' -f1)
    if command -v curl >/dev/null 2>&1; then
      say "uploading the reports in $REPORTS ($size bytes compressed) with curl"
      upload() { curl -fsS --retry 3 --connect-timeout 20 --max-time 600 -H 'Content-Type: application/gzip' --upload-file "$WORK/reports.tar.gz" "$REPORTS_URL"; }
    else
      say "uploading the reports in $REPORTS ($size bytes compressed) with python3"
      upload() {
        python3 -c 'import sys, urllib.request
body = open(sys.argv[1], "rb").read()
put = urllib.request.Request(sys.argv[2], data=body, method="PUT", headers={"Content-Type": "application/gzip"})
urllib.request.urlopen(put, timeout=600).read()' "$WORK/reports.tar.gz" "$REPORTS_URL"
      }
    fi
    if why=$(upload 2>&1); then
      printf 'AMIPLAN-REPORT-STORED %s %s %s\n' "$JOB" "$size" "$digest" >>"$CONSOLE"
    else
      printf 'AMIPLAN-REPORT-LOST %s the upload failed: %s\n' "$JOB" "$(printf '%s' "$why" | tail -n 1)" >>"$CONSOLE"
    fi
  fi
else
  say "no reports: $REPORTS does not exist"
fi
"#;

/// What the test job said about the reports it uploaded: their size and SHA-256, or why they
/// could not be sent. `None` when it said nothing (no reports directory).
pub fn uploaded_reports(console: &str, job_id: &str) -> Option<Result<(u64, String), String>> {
    console.lines().rev().find_map(|line| {
        let line = line.trim_end_matches('\r');
        if let Some(rest) = line.strip_prefix(STORED_MARKER).and_then(|r| r.strip_prefix(' ')) {
            let mut fields = rest.split(' ');
            if fields.next() != Some(job_id) {
                return None;
            }
            let size = fields.next()?.parse().ok()?;
            let digest = fields.next()?.to_string();
            return Some(Ok((size, digest)));
        }
        let rest = line.strip_prefix(LOST_MARKER)?.strip_prefix(' ')?;
        let why = rest.strip_prefix(job_id)?.strip_prefix(' ')?;
        Some(Err(why.to_string()))
    })
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReportsError {
    #[error("the reports on the console are incomplete or garbled (line {0} missing or out of order)")]
    Garbled(usize),
    #[error("the reports on the console do not match their digest ({0})")]
    Digest(String),
}

/// The gzipped tar of reports that job `job_id` sent on `console`, if it sent one.
pub fn read_reports(console: &str, job_id: &str) -> Option<Result<Vec<u8>, ReportsError>> {
    let end_prefix = format!("{REPORT_END_MARKER} {job_id} ");
    let end = console.lines().rev().find_map(|line| line.find(&end_prefix).map(|at| &line[at + end_prefix.len()..]))?;
    let mut fields = end.split_whitespace();
    let (size, digest) = (fields.next()?.parse::<usize>().ok()?, fields.next()?.to_string());
    let prefix = format!("{REPORT_MARKER} {job_id} ");
    let mut encoded = String::new();
    let mut expected = 1;
    for line in console.lines() {
        let Some(at) = line.find(&prefix) else { continue };
        let mut parts = line[at + prefix.len()..].trim_end_matches('\r').splitn(2, ' ');
        match parts.next().and_then(|n| n.parse::<usize>().ok()) {
            // A test that ran twice on one console sends a fresh series.
            Some(1) if expected > 1 => {
                encoded.clear();
                expected = 1;
            }
            Some(n) if n == expected => {}
            _ => return Some(Err(ReportsError::Garbled(expected))),
        }
        encoded.push_str(parts.next().unwrap_or_default().trim());
        expected += 1;
    }
    let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(encoded.as_bytes()) else {
        return Some(Err(ReportsError::Garbled(expected)));
    };
    if bytes.len() != size || hex::encode(Sha256::digest(&bytes)) != digest {
        return Some(Err(ReportsError::Digest(format!("{} bytes, expected {size}", bytes.len()))));
    }
    Some(Ok(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_are_read_back_only_when_whole() {
        let archive = b"not really a tar, but bytes".to_vec();
        let encoded = base64::engine::general_purpose::STANDARD.encode(&archive);
        let (first, second) = encoded.split_at(20);
        let digest = hex::encode(Sha256::digest(&archive));
        let console = format!(
            "[ 1.0] noise\r\nAMIPLAN-REPORT abc 1 {first}\r\nkernel: x\nAMIPLAN-REPORT abc 2 {second}\nAMIPLAN-REPORT-END abc {} {digest}\n",
            archive.len()
        );
        assert_eq!(read_reports(&console, "abc"), Some(Ok(archive.clone())));
        assert_eq!(read_reports(&console, "other"), None);
        let missing = console.replace(&format!("AMIPLAN-REPORT abc 1 {first}"), "");
        assert!(matches!(read_reports(&missing, "abc"), Some(Err(ReportsError::Garbled(1)))));
        let flipped = if second.starts_with('A') { 'B' } else { 'A' };
        let altered = console.replace(second, &format!("{flipped}{}", &second[1..]));
        assert!(matches!(read_reports(&altered, "abc"), Some(Err(_))));
    }

    #[test]
    fn uploaded_reports_are_named_by_size_and_digest_or_why_not() {
        let stored = format!("boot\nAMIPLAN-REPORT-STORED abc 1234 {}\r\nAMIPLAN-RESULT abc ok\n", "ef".repeat(32));
        assert_eq!(uploaded_reports(&stored, "abc"), Some(Ok((1234, "ef".repeat(32)))));
        assert_eq!(uploaded_reports(&stored, "other"), None);
        let lost = "AMIPLAN-REPORT-LOST abc the upload failed: curl: (22) 403\n";
        assert_eq!(uploaded_reports(lost, "abc"), Some(Err("the upload failed: curl: (22) 403".to_string())));
        assert_eq!(uploaded_reports("AMIPLAN-RESULT abc ok\n", "abc"), None);
    }
}
