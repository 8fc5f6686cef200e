//! Times as people read them in a terminal: `14m`, `2h5m`, `in 14m`, `3m ago`. Written here
//! rather than taken from a crate because it follows kubectl's own rounding (precise when
//! short, coarse when long), so our columns read like `kubectl get`'s.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

/// A duration, rounded down the way kubectl's AGE column rounds.
pub fn duration(d: Duration) -> String {
    let s = d.as_secs();
    let (m, h, days) = (s / 60, s / 3600, s / 86_400);
    let with = |big: u64, unit: &str, small: u64, small_unit: &str| {
        if small == 0 {
            format!("{big}{unit}")
        } else {
            format!("{big}{unit}{small}{small_unit}")
        }
    };
    match s {
        0..60 => format!("{s}s"),
        60..600 => with(m, "m", s % 60, "s"),
        600..10_800 => format!("{m}m"),
        10_800..28_800 => with(h, "h", m % 60, "m"),
        28_800..172_800 => format!("{h}h"),
        172_800..691_200 => with(days, "d", h % 24, "h"),
        _ => format!("{days}d"),
    }
}

/// How far `at` is from `now`: `in 14m`, `3m ago`, `now`.
pub fn relative(at: Timestamp, now: Timestamp) -> String {
    let seconds = at.as_second() - now.as_second();
    match seconds {
        0 => "now".into(),
        s if s > 0 => format!("in {}", duration(Duration::from_secs(s as u64))),
        s => format!("{} ago", duration(Duration::from_secs(s.unsigned_abs()))),
    }
}

/// How long ago `at` was (kubectl's AGE); a time in the future (clock skew) reads `0s`.
pub fn age(at: Timestamp, now: Timestamp) -> String {
    let seconds = (now.as_second() - at.as_second()).max(0);
    duration(Duration::from_secs(seconds as u64))
}

/// A timestamp to the second, UTC, as Kubernetes writes them.
pub fn timestamp(at: Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn short_durations_are_precise_long_ones_coarse() {
        let cases = [
            (0, "0s"),
            (59, "59s"),
            (60, "1m"),
            (90, "1m30s"),
            (599, "9m59s"),
            (900, "15m"),
            (899, "14m"),
            (3600, "60m"),
            (10_800, "3h"),
            (11_100, "3h5m"),
            (28_800, "8h"),
            (90_000, "25h"),
            (172_800, "2d"),
            (183_600, "2d3h"),
            (691_200, "8d"),
            (2_592_000, "30d"),
        ];
        for (s, text) in cases {
            assert_eq!(duration(secs(s)), text, "{s}s");
        }
    }

    #[test]
    fn relative_times_say_which_way() {
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let at = |offset: i64| Timestamp::from_second(1_800_000_000 + offset).unwrap();
        assert_eq!(relative(at(900), now), "in 15m");
        assert_eq!(relative(at(-180), now), "3m ago");
        assert_eq!(relative(now, now), "now");
        assert_eq!(age(at(-3700), now), "61m");
        assert_eq!(age(at(30), now), "0s");
    }

    #[test]
    fn timestamps_are_kubernetes_style() {
        let t = Timestamp::from_second(1_800_000_000).unwrap();
        assert_eq!(timestamp(t), "2027-01-15T08:00:00Z");
    }
}
