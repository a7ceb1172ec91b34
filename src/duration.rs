//! Durations as people write them in flags and manifests: `90s`, `30m`, `2h`, `1h30m` (jiff's
//! friendly format, hours at most: a day is not always 24 hours), or bare seconds.

use std::time::Duration;

/// A non-negative duration, or why `text` is not one.
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if !text.is_empty() && text.chars().all(|c| c.is_ascii_digit()) {
        return text.parse().map(Duration::from_secs).map_err(|_| format!("`{text}` is too large"));
    }
    let signed: jiff::SignedDuration =
        text.parse().map_err(|_| format!("`{text}` is not a duration like 90s, 30m or 2h"))?;
    Duration::try_from(signed).map_err(|_| format!("`{text}` is negative"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn people_s_durations_parse() {
        assert_eq!(parse("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
        for wrong in ["2d", "soon", "", "-5m", "5 parsecs"] {
            assert!(parse(wrong).is_err(), "{wrong}");
        }
    }
}
