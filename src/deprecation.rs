//! When AMIs are deprecated: a fixed date, or a time after each AMI's creation. Times are whole
//! minutes, as AWS keeps them (it rounds EnableImageDeprecation up to the minute).

use jiff::Timestamp;

const DAY: i64 = 24 * 3600;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deprecation {
    /// Seconds after the AMI's creation.
    After(i64),
    /// A fixed moment (seconds since the epoch).
    At(i64),
}

impl Deprecation {
    /// `365d`, `2027-06-01` or `2027-06-01T12:00:00Z`.
    pub fn parse(text: &str) -> Result<Deprecation, String> {
        if let Some(days) = text.strip_suffix('d') {
            return match days.parse::<i64>() {
                Ok(days) if (1..=36_500).contains(&days) => Ok(Deprecation::After(days * DAY)),
                _ => Err(format!("`{text}`: the number of days must be 1 to 36500")),
            };
        }
        let full = if text.len() == 10 { format!("{text}T00:00:00Z") } else { text.to_string() };
        parse(&full)
            .map(|t| Deprecation::At(round_up(t)))
            .ok_or_else(|| format!("`{text}` is neither a number of days (365d) nor a date (2027-06-01)"))
    }

    /// The deprecation time of an AMI created at `created` (RFC 3339; `now` when unknown: an
    /// AMI about to be made).
    pub fn for_image(self, created: Option<&str>, now: i64) -> i64 {
        match self {
            Deprecation::At(at) => at,
            Deprecation::After(after) => {
                let created = created.and_then(parse).unwrap_or(now);
                round_up(created + after)
            }
        }
    }

    /// Whether AWS's `live` time realises this deprecation for an AMI created at `created`.
    /// Relative times allow a few minutes: the executor computes them from its own clock right
    /// after registration, the planner from AWS's creation date.
    pub fn matches(self, live: Option<&str>, created: Option<&str>, now: i64) -> bool {
        let Some(live) = live.and_then(parse) else { return false };
        let want = self.for_image(created, now);
        match self {
            Deprecation::At(_) => round_up(live) == want,
            Deprecation::After(_) => (live - want).abs() <= 5 * 60,
        }
    }
}

/// RFC 3339 (AWS's format) of a time in seconds since the epoch.
pub fn format(secs: i64) -> String {
    Timestamp::from_second(secs).map(|t| t.to_string()).unwrap_or_default()
}

/// Seconds since the epoch of an RFC 3339 time (AWS writes `2026-01-01T10:00:30.000Z`).
pub fn parse(text: &str) -> Option<i64> {
    text.parse::<Timestamp>().ok().map(|t| t.as_second())
}

/// The clock, in seconds since the epoch: read by the commands and the executor, and passed to
/// everything that plans.
pub fn now() -> i64 {
    Timestamp::now().as_second()
}

fn round_up(secs: i64) -> i64 {
    (secs + 59).div_euclid(60) * 60
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_days_and_dates() {
        assert_eq!(Deprecation::parse("365d"), Ok(Deprecation::After(365 * DAY)));
        assert_eq!(format(Deprecation::parse("2027-06-01").unwrap().for_image(None, 0)), "2027-06-01T00:00:00Z");
        assert!(Deprecation::parse("0d").is_err() && Deprecation::parse("soon").is_err());
    }

    #[test]
    fn relative_times_follow_the_creation_date() {
        let after = Deprecation::parse("30d").unwrap();
        let created = "2026-01-01T10:00:30.000Z";
        assert_eq!(format(after.for_image(Some(created), 0)), "2026-01-31T10:01:00Z");
        assert!(after.matches(Some("2026-01-31T10:03:00Z"), Some(created), 0), "a few minutes apart");
        assert!(!after.matches(Some("2026-02-01T10:01:00Z"), Some(created), 0));
        assert!(!after.matches(None, Some(created), 0));
        let fixed = Deprecation::parse("2027-06-01").unwrap();
        assert!(fixed.matches(Some("2027-06-01T00:00:00.000Z"), Some(created), 0));
        let now = parse("2030-01-01T00:00:00Z").unwrap();
        assert_eq!(format(after.for_image(None, now)), "2030-01-31T00:00:00Z", "a new AMI counts from now");
    }
}
