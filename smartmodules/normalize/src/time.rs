//! Timestamps without a clock: wasm32-unknown-unknown has none, so the year RFC 3164 omits
//! comes from the record's ingest timestamp, which makes a replay deterministic.

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, TimeZone, Utc};

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

pub fn month_from_abbrev(s: &str) -> Option<u32> {
    MONTHS
        .iter()
        .position(|m| m.eq_ignore_ascii_case(s))
        .map(|i| i as u32 + 1)
}

pub fn parse_rfc3339(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// `Mmm dd hh:mm:ss` (day space-padded or not) at the start of `s`; returns the rest.
/// RFC 3164 times carry no zone: they are read as UTC.
pub fn parse_bsd_timestamp(s: &str, received_ms: i64) -> Option<(DateTime<Utc>, &str)> {
    let month = month_from_abbrev(s.get(0..3)?)?;
    let rest = s.get(3..)?.strip_prefix(' ')?;
    let rest = rest.trim_start_matches(' ');
    let day_len = rest.bytes().take_while(|b| b.is_ascii_digit()).count();
    if day_len == 0 || day_len > 2 {
        return None;
    }
    let day: u32 = rest[..day_len].parse().ok()?;
    let rest = rest[day_len..].strip_prefix(' ')?;
    let hms = rest.get(0..8)?;
    let b = hms.as_bytes();
    if b[2] != b':' || b[5] != b':' {
        return None;
    }
    let h: u32 = hms[0..2].parse().ok()?;
    let m: u32 = hms[3..5].parse().ok()?;
    let sec: u32 = hms[6..8].parse().ok()?;
    let mut rest = &rest[8..];
    // Optional fractional seconds (`.123`), as some daemons write.
    let mut nanos = 0u32;
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(|b| b.is_ascii_digit()).count();
        if n > 0 {
            let digits = &frac[..n.min(9)];
            nanos = digits.parse::<u32>().ok()? * 10u32.pow(9 - digits.len() as u32);
            rest = &frac[n..];
        }
    }
    let year = infer_year(month, received_ms);
    let date = NaiveDate::from_ymd_opt(year, month, day)?;
    let t = date.and_hms_nano_opt(h, m, sec, nanos)?;
    Some((Utc.from_utc_datetime(&t), rest))
}

/// The year of the ingest time, or the year before when the line's month lies more than one
/// month after the ingest month (a December line read in January).
fn infer_year(month: u32, received_ms: i64) -> i32 {
    let received = DateTime::from_timestamp_millis(received_ms)
        .unwrap_or_else(|| DateTime::from_timestamp_millis(0).unwrap_or_default());
    let (y, m) = (received.year(), received.month());
    if received_ms > 0 && month > m + 1 {
        y - 1
    } else {
        y
    }
}

/// `10/Oct/2000:13:55:36 -0700`, the access-log time format, read field by field (chrono's
/// format-string parser costs more than the rest of the line inside the wasm module).
pub fn parse_clf(s: &str) -> Option<DateTime<Utc>> {
    let b = s.as_bytes();
    if b.len() < 26 || b[2] != b'/' || b[6] != b'/' || b[11] != b':' || b[14] != b':' {
        return None;
    }
    if b[17] != b':' || b[20] != b' ' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    let day = num(0..2)?;
    let month = month_from_abbrev(s.get(3..6)?)?;
    let year = num(7..11)? as i32;
    let (h, m, sec) = (num(12..14)?, num(15..17)?, num(18..20)?);
    let naive = NaiveDate::from_ymd_opt(year, month, day)?.and_hms_opt(h, m, sec)?;
    let offset = parse_offset(s.get(21..)?)?;
    offset
        .from_local_datetime(&naive)
        .single()
        .map(|t| t.with_timezone(&Utc))
}

fn parse_offset(z: &str) -> Option<FixedOffset> {
    let (sign, digits) = match z.as_bytes().first()? {
        b'+' => (1, &z[1..]),
        b'-' => (-1, &z[1..]),
        _ => return None,
    };
    let digits: String = digits.chars().filter(|c| *c != ':').collect();
    if digits.len() != 4 {
        return None;
    }
    let h: i32 = digits[..2].parse().ok()?;
    let m: i32 = digits[2..].parse().ok()?;
    FixedOffset::east_opt(sign * (h * 3600 + m * 60))
}

pub fn format(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub fn format_ms(ms: i64) -> Option<String> {
    if ms <= 0 {
        return None;
    }
    DateTime::from_timestamp_millis(ms).map(format)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clf_time_is_converted_to_utc() {
        let t = parse_clf("10/Oct/2000:13:55:36 -0700").expect("parses");
        assert_eq!(format(t), "2000-10-10T20:55:36.000Z");
        let t = parse_clf("01/Jan/2024:00:00:01 +0530").expect("parses");
        assert_eq!(format(t), "2023-12-31T18:30:01.000Z");
        for bad in [
            "10/Oct/2000:13:55:36",
            "10/Foo/2000:13:55:36 -0700",
            "32/Oct/2000:13:55:36 -0700",
            "10/Oct/2000:25:55:36 -0700",
            "1x/Oct/2000:13:55:36 -0700",
            "10/Oct/2000:13:55:36 0700",
        ] {
            assert!(parse_clf(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn bsd_time_with_fraction() {
        let (t, rest) =
            parse_bsd_timestamp("Mar  1 01:02:03.250 host", 1_795_000_000_000).expect("parses");
        assert_eq!(format(t), "2026-03-01T01:02:03.250Z");
        assert_eq!(rest, " host");
    }

    #[test]
    fn impossible_dates_are_rejected() {
        assert!(parse_bsd_timestamp("Feb 31 01:02:03 h", 1_795_000_000_000).is_none());
        assert!(parse_bsd_timestamp("Foo  1 01:02:03 h", 1_795_000_000_000).is_none());
    }
}
