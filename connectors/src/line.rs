//! One received line made into a raw record: cut to the size limit and tagged when it was
//! longer (the full line's head set aside in `dead-letters`), with the sender's address.

use crate::internal_events::{self, Connector};
use soc_core::stream::{DeadLetter, ProduceRecord};
use std::net::IpAddr;

/// Lines on their way to the stream, with what the dead-letter topic must learn of them.
#[derive(Debug, Default)]
pub struct Lines {
    pub records: Vec<ProduceRecord>,
    pub dead_letters: Vec<DeadLetter>,
    pub bytes: u64,
}

impl Lines {
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Add one line. `line` holds at most `limit` bytes of it; `full_len` is its whole
    /// length. Trailing line-ending bytes (`\r`, `\n`, NUL) are dropped; an empty line is
    /// not a record.
    #[allow(clippy::too_many_arguments)]
    pub fn push(
        &mut self,
        connector: Connector,
        line: &[u8],
        full_len: usize,
        limit: usize,
        peer: Option<IpAddr>,
        key: Option<Vec<u8>>,
        origin: impl FnOnce() -> String,
        received_ms: i64,
    ) {
        let mut line = line;
        while let Some((b'\n' | b'\r' | 0, rest)) = line.split_last() {
            line = rest;
        }
        if line.is_empty() {
            return;
        }
        self.bytes += full_len as u64;
        let value = if full_len > limit {
            internal_events::truncated(connector);
            self.dead_letters.push(DeadLetter::new(
                "line_too_long",
                format!("{full_len} bytes, over the {limit}-byte limit"),
                origin(),
                line,
                full_len as u64,
            ));
            soc_core::event::truncated_record(line, full_len as u64)
        } else {
            line.to_vec()
        };
        let value = match peer {
            Some(ip) => soc_core::event::with_peer(value, ip),
            None => value,
        };
        self.records.push(ProduceRecord {
            key,
            value,
            timestamp_ms: received_ms,
        });
    }
}

/// What [`read_line_limited`] read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineRead {
    /// Bytes taken from the reader, line ending included; 0 at the end of the input.
    pub consumed: usize,
    /// The line's full length without its line ending.
    pub len: usize,
    /// It ended with a newline (false: the input ended first, e.g. a line still being
    /// written).
    pub complete: bool,
}

/// Read one line (with its newline) into `buf`, keeping at most `limit` bytes of it and
/// skipping the rest, so a huge line costs no more memory than the limit.
pub async fn read_line_limited<R: tokio::io::AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    limit: usize,
) -> std::io::Result<LineRead> {
    use tokio::io::AsyncBufReadExt;
    let (mut consumed, mut len) = (0usize, 0usize);
    // The byte before the newline, wherever the buffer boundary fell: `\r` ends a CRLF line.
    let mut last = None;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(LineRead {
                consumed,
                len,
                complete: false,
            });
        }
        let (chunk, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..=i], true),
            None => (available, false),
        };
        let keep = limit.saturating_sub(buf.len()).min(chunk.len());
        buf.extend_from_slice(&chunk[..keep]);
        let body = &chunk[..chunk.len() - usize::from(done)];
        len += body.len();
        last = body.last().copied().or(last);
        let n = chunk.len();
        reader.consume(n);
        consumed += n;
        if done {
            if last == Some(b'\r') {
                len -= 1;
            }
            return Ok(LineRead {
                consumed,
                len,
                complete: true,
            });
        }
    }
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_line_costs_no_more_than_the_limit() {
        let text = format!("short\r\n{}\nlast", "x".repeat(10_000));
        // A small buffer, so lines cross its boundary.
        let mut reader = tokio::io::BufReader::with_capacity(64, text.as_bytes());
        let mut buf = Vec::new();
        let mut lines = Vec::new();
        loop {
            buf.clear();
            let read = read_line_limited(&mut reader, &mut buf, 100)
                .await
                .expect("read");
            if read.consumed == 0 {
                break;
            }
            assert!(buf.len() <= 100);
            lines.push((read.consumed, read.len, buf.len(), read.complete));
        }
        assert_eq!(
            lines,
            vec![
                (7, 5, 7, true),
                (10_001, 10_000, 100, true),
                (4, 4, 4, false)
            ]
        );
    }

    #[test]
    fn a_long_line_is_cut_tagged_and_set_aside() {
        let mut lines = Lines::default();
        let long = [b'a'; 100];
        let peer: IpAddr = "192.0.2.9".parse().expect("ip");
        lines.push(
            Connector::SyslogTcp,
            &long[..10],
            100,
            10,
            Some(peer),
            None,
            || "syslog_tcp:192.0.2.9".into(),
            1,
        );
        lines.push(
            Connector::SyslogTcp,
            b"\r\n",
            2,
            10,
            None,
            None,
            String::new,
            1,
        );
        assert_eq!(lines.len(), 1);
        let text = String::from_utf8(lines.records[0].value.clone()).expect("utf-8");
        let (line, notes) = soc_core::event::split_notes(&text);
        assert_eq!(line, "aaaaaaaaaa");
        assert_eq!(notes.truncated_bytes, Some(100));
        assert_eq!(notes.peer, Some(peer));
        assert_eq!(lines.dead_letters.len(), 1);
        assert_eq!(lines.dead_letters[0].bytes, 100);
        assert_eq!(lines.dead_letters[0].source, "syslog_tcp:192.0.2.9");
    }
}
