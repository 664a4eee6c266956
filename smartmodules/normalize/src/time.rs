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
    parse_rfc3339_local(s).map(|t| t.with_timezone(&Utc))
}

/// RFC 3339 keeping the writer's offset (the syslog header reports the time as written).
pub fn parse_rfc3339_local(s: &str) -> Option<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339(s).ok().or_else(|| {
        // `+0100` without its colon, as `journalctl -o short-iso` once wrote it.
        s.get(..10)?.contains('-').then_some(())?;
        DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z")
            .ok()
            .or_else(|| {
                // No zone at all (rsyslog's `RSYSLOG_FileFormat` without one): read as UTC,
                // like an RFC 3164 time.
                let t = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").ok()?;
                Some(Utc.from_utc_datetime(&t).fixed_offset())
            })
    })
}

/// `journalctl -o short-full`: `Mon 2025-03-10 08:00:23 CET` at the start of `s`; returns
/// the rest. The zone is an abbreviation: the common ones are known, others read as UTC.
pub fn parse_short_full(s: &str) -> Option<(DateTime<FixedOffset>, &str)> {
    let mut it = s.splitn(5, ' ');
    let weekday = it.next()?;
    if !["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"].contains(&weekday) {
        return None;
    }
    let date = NaiveDate::parse_from_str(it.next()?, "%Y-%m-%d").ok()?;
    let hms = it.next()?;
    let time = chrono::NaiveTime::parse_from_str(hms, "%H:%M:%S%.f").ok()?;
    let zone = it.next()?;
    let hours = match zone {
        "UTC" | "GMT" | "WET" | "Z" => 0,
        "CET" | "BST" | "WEST" => 1,
        "CEST" | "EET" => 2,
        "EEST" | "MSK" => 3,
        "JST" | "KST" => 9,
        "AEST" => 10,
        "AEDT" => 11,
        "EST" => -5,
        "EDT" => -4,
        "CST" => -6,
        "CDT" => -5,
        "MST" => -7,
        "MDT" => -6,
        "PST" => -8,
        "PDT" => -7,
        _ => 0,
    };
    let offset = FixedOffset::east_opt(hours * 3600)?;
    let t = offset.from_local_datetime(&date.and_time(time)).single()?;
    Some((t, it.next().unwrap_or("")))
}

/// `Mmm dd hh:mm:ss` (day space-padded or not) at the start of `s`; returns the rest.
/// Also read: a year before the time (`Mar 7 2008 19:06:53`) and a colon after it
/// (`19:06:53:`), both written by real devices. RFC 3164 times carry no zone: read as UTC.
pub fn parse_bsd_timestamp(s: &str, receipt: Receipt) -> Option<(DateTime<Utc>, &str)> {
    let month = month_from_abbrev(s.get(0..3)?)?;
    let rest = s.get(3..)?.strip_prefix(' ')?;
    let rest = rest.trim_start_matches(' ');
    let day_len = rest.bytes().take_while(|b| b.is_ascii_digit()).count();
    if day_len == 0 || day_len > 2 {
        return None;
    }
    let day: u32 = rest[..day_len].parse().ok()?;
    let mut rest = rest[day_len..].strip_prefix(' ')?;
    let mut year = None;
    if let Some(y) = rest
        .get(0..5)
        .filter(|y| y.as_bytes()[4] == b' ' && y.as_bytes()[..4].iter().all(u8::is_ascii_digit))
    {
        year = y[..4].parse::<i32>().ok();
        rest = &rest[5..];
    }
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
    let rest = rest.strip_prefix(':').unwrap_or(rest);
    let at = |year: i32| {
        let t = NaiveDate::from_ymd_opt(year, month, day)?.and_hms_nano_opt(h, m, sec, nanos)?;
        Some(Utc.from_utc_datetime(&t))
    };
    let t = match year.or(receipt.year) {
        Some(y) => at(y)?,
        None => infer_year(receipt.ms, at)?,
    };
    Some((t, rest))
}

/// When a line was received, and the year its writer meant when the shipper knows it (an
/// archive replayed with `--year`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Receipt {
    /// Ms since the epoch; 0 when unknown.
    pub ms: i64,
    pub year: Option<i32>,
}

impl Receipt {
    pub fn at(ms: i64) -> Self {
        Receipt { ms, year: None }
    }
}

/// How far ahead of its receipt a year-less time may lie and still be this year: RFC 3164
/// times carry no zone, and a writer east of UTC is up to 14 hours ahead; a little more for
/// clocks that drift.
const AHEAD_SLACK_MS: i64 = 26 * 3600 * 1000;

/// The year-less time `at(year)` placed in the receipt's year, or the year before when it
/// would lie in the future (a December line read in January), as rsyslog does; never in the
/// future. A date that does not exist in a year (29 February) moves back to one where it does.
fn infer_year(
    received_ms: i64,
    at: impl Fn(i32) -> Option<DateTime<Utc>>,
) -> Option<DateTime<Utc>> {
    let received = DateTime::from_timestamp_millis(received_ms)?;
    if received_ms <= 0 {
        return at(received.year());
    }
    let limit = received_ms + AHEAD_SLACK_MS;
    (0..8)
        .filter_map(|back| at(received.year() - back))
        .find(|t| t.timestamp_millis() <= limit)
}

/// The decimal number in `s[r]`, all of whose characters are digits.
fn digits(s: &str, r: std::ops::Range<usize>) -> Option<u32> {
    let t = s.get(r)?;
    t.bytes()
        .all(|c| c.is_ascii_digit())
        .then(|| t.parse().ok())?
}

/// `10/Oct/2000:13:55:36 -0700`, the access-log time format, read field by field (chrono's
/// format-string parser costs more than the rest of the line inside the wasm module).
pub fn parse_clf(s: &str) -> Option<DateTime<Utc>> {
    // `7/Mar/2025:...`: some servers and log shippers write the day without its zero.
    if s.as_bytes().get(1) == Some(&b'/') {
        return parse_clf(&format!("0{s}"));
    }
    let b = s.as_bytes();
    if b.len() < 26 || b[2] != b'/' || b[6] != b'/' || b[11] != b':' || b[14] != b':' {
        return None;
    }
    if b[17] != b':' || b[20] != b' ' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| digits(s, r);
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

/// `YYYY-MM-DD HH:MM:SS` with an optional `.fff` / `,fff` fraction, at the start of `s`
/// (exim, proftpd). No zone is written: read as UTC. Returns the rest after one space.
pub fn parse_iso_space(s: &str) -> Option<(DateTime<Utc>, &str)> {
    let b = s.as_bytes();
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b' '
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| digits(s, r);
    let date = NaiveDate::from_ymd_opt(num(0..4)? as i32, num(5..7)?, num(8..10)?)?;
    let mut rest = s.get(19..)?;
    let mut nanos = 0;
    if let Some(frac) = rest.strip_prefix(['.', ',']) {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count().min(9);
        if n > 0 {
            nanos = frac[..n].parse::<u32>().ok()? * 10u32.pow(9 - n as u32);
        }
        rest = &frac[n..];
    }
    let t = date.and_hms_nano_opt(num(11..13)?, num(14..16)?, num(17..19)?, nanos)?;
    Some((Utc.from_utc_datetime(&t), rest.strip_prefix(' ')?))
}

/// `Www Mmm d hh:mm:ss[.ffffff] yyyy` (ctime, as apache's error log and vsftpd write it),
/// at the start of `s`. Read as UTC. Returns the rest.
pub fn parse_ctime(s: &str) -> Option<(DateTime<Utc>, &str)> {
    let rest = s.get(4..)?;
    if !matches!(s.get(3..4), Some(" ")) {
        return None;
    }
    let month = month_from_abbrev(rest.get(0..3)?)?;
    let rest = rest[3..].trim_start_matches(' ');
    let day_len = rest.bytes().take_while(u8::is_ascii_digit).count();
    if day_len == 0 || day_len > 2 {
        return None;
    }
    let day: u32 = rest[..day_len].parse().ok()?;
    let rest = rest[day_len..].strip_prefix(' ')?;
    let hms = rest.get(0..8)?;
    let hb = hms.as_bytes();
    if hb[2] != b':' || hb[5] != b':' {
        return None;
    }
    let (h, m, sec): (u32, u32, u32) = (
        hms[0..2].parse().ok()?,
        hms[3..5].parse().ok()?,
        hms[6..8].parse().ok()?,
    );
    let mut rest = &rest[8..];
    let mut nanos = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count().min(9);
        if n > 0 {
            nanos = frac[..n].parse::<u32>().ok()? * 10u32.pow(9 - n as u32);
        }
        rest = &frac[n..];
    }
    let rest = rest.strip_prefix(' ')?;
    let year: i32 = rest.get(0..4)?.parse().ok()?;
    let t = NaiveDate::from_ymd_opt(year, month, day)?.and_hms_nano_opt(h, m, sec, nanos)?;
    Some((Utc.from_utc_datetime(&t), &rest[4..]))
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
        let one_digit = parse_clf("7/Mar/2025:10:00:00 +0000").expect("a one-digit day");
        assert_eq!(format(one_digit), "2025-03-07T10:00:00.000Z");
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
            parse_bsd_timestamp("Mar  1 01:02:03.250 host", Receipt::at(1_795_000_000_000))
                .expect("parses");
        assert_eq!(format(t), "2026-03-01T01:02:03.250Z");
        assert_eq!(rest, " host");
    }

    #[test]
    fn iso_space_and_ctime() {
        let (t, rest) = parse_iso_space("2021-05-28 18:08:01,124 mantis").expect("parses");
        assert_eq!(format(t), "2021-05-28T18:08:01.124Z");
        assert_eq!(rest, "mantis");
        assert!(parse_iso_space("2021-05-28T18:08:01 x").is_none());
        let (t, rest) = parse_ctime("Thu Oct 13 12:24:49.880562 2022] [x]").expect("parses");
        assert_eq!(format(t), "2022-10-13T12:24:49.880Z");
        assert_eq!(rest, "] [x]");
        let (t, _) = parse_ctime("Mon Jun  9 12:08:53 2020 [pid 1]").expect("parses");
        assert_eq!(format(t), "2020-06-09T12:08:53.000Z");
        assert!(parse_ctime("Mon Foo  9 12:08:53 2020").is_none());
    }

    #[test]
    fn a_year_less_time_is_never_in_the_future() {
        let nov_18 = Receipt::at(1_795_000_000_000); // 2026-11-18T...Z
        let year = |line: &str, r: Receipt| parse_bsd_timestamp(line, r).map(|(t, _)| t.year());
        assert_eq!(year("Nov 18 00:00:00 h", nov_18), Some(2026));
        // A day ahead is a writer east of UTC; two days ahead is last year's line.
        assert_eq!(year("Nov 19 00:00:00 h", nov_18), Some(2026));
        assert_eq!(year("Nov 20 12:00:00 h", nov_18), Some(2025));
        assert_eq!(year("Dec 31 23:59:59 h", nov_18), Some(2025));
        assert_eq!(year("Jan  1 00:00:00 h", nov_18), Some(2026));
        // 29 February exists in 2024, not in 2026 or 2025.
        assert_eq!(year("Feb 29 10:00:00 h", nov_18), Some(2024));
        // The shipper's year wins over the guess, even for a future-looking date.
        let archive = Receipt {
            year: Some(2019),
            ..nov_18
        };
        assert_eq!(year("Dec 31 23:59:59 h", archive), Some(2019));
        // A year written in the line wins over both.
        assert_eq!(year("Mar 7 2008 19:06:53 h", archive), Some(2008));
    }

    #[test]
    fn impossible_dates_are_rejected() {
        assert!(parse_bsd_timestamp("Feb 31 01:02:03 h", Receipt::at(1_795_000_000_000)).is_none());
        assert!(parse_bsd_timestamp("Foo  1 01:02:03 h", Receipt::at(1_795_000_000_000)).is_none());
    }

    #[test]
    fn bsd_time_with_year_and_trailing_colon() {
        let (t, rest) = parse_bsd_timestamp(
            "Mar 7 2008 19:06:53: example",
            Receipt::at(1_795_000_000_000),
        )
        .expect("parses");
        assert_eq!(format(t), "2008-03-07T19:06:53.000Z");
        assert_eq!(rest, " example");
        // A year after the time is not part of it: rsyslog reads it as the host name.
        let (_, rest) =
            parse_bsd_timestamp("Aug 10 22:18:24 2009 h", Receipt::at(1_795_000_000_000))
                .expect("parses");
        assert_eq!(rest, " 2009 h");
    }
}
