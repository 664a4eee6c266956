//! Frames of a syslog stream (RFC 6587): octet counting (`LEN SP <PRI>...`) and
//! non-transparent framing (one message per line), told apart per frame as the RFC says, so
//! one connection may mix them. Neither a frame nor the buffer grows past its bound.

use tokio::io::{AsyncRead, AsyncReadExt};

/// Read buffer per connection.
const BUFFER_BYTES: usize = 64 * 1024;
/// `LEN` of an octet-counted frame: at most nine digits (RFC 6587 `MSG-LEN`).
const MAX_LEN_DIGITS: usize = 9;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The connection ended inside an octet-counted frame.
    #[error("the connection ended {missing} bytes before the end of a {len}-byte frame")]
    Partial { len: usize, missing: usize },
}

pub struct FrameReader<R> {
    inner: R,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    eof: bool,
    limit: usize,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// Frames longer than `limit` bytes are cut to it (their full length is reported).
    pub fn new(inner: R, limit: usize) -> Self {
        FrameReader {
            inner,
            buf: vec![0; BUFFER_BYTES].into_boxed_slice(),
            start: 0,
            end: 0,
            eof: false,
            limit,
        }
    }

    /// Bytes received and not yet framed: none means the next frame needs a read.
    pub fn has_buffered(&self) -> bool {
        self.end > self.start
    }

    fn available(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Read more; false at the end of the stream.
    async fn fill(&mut self) -> std::io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            // Full of one frame's bytes: the caller consumes before asking again.
            return Ok(true);
        }
        let n = self.inner.read(&mut self.buf[self.end..]).await?;
        if n == 0 {
            self.eof = true;
            return Ok(false);
        }
        self.end += n;
        Ok(true)
    }

    /// The next frame into `out` (cleared first; at most the limit). Returns the frame's
    /// full length, or `None` at the end of the stream.
    pub async fn next(&mut self, out: &mut Vec<u8>) -> Result<Option<usize>, FrameError> {
        out.clear();
        // Line ends and NULs between frames separate them; they are not frames.
        loop {
            let skip = self
                .available()
                .iter()
                .take_while(|b| matches!(b, b'\n' | b'\r' | 0))
                .count();
            self.consume(skip);
            if self.has_buffered() {
                break;
            }
            if !self.fill().await? {
                return Ok(None);
            }
        }
        // Enough bytes to tell the framing: `LEN SP <`.
        while self.available().len() < MAX_LEN_DIGITS + 2 && self.fill().await? {}
        match octet_count(self.available()) {
            Some((len, header)) => {
                self.consume(header);
                self.read_counted(len, out).await.map(Some)
            }
            None => self.read_line(out).await.map(Some),
        }
    }

    async fn read_counted(&mut self, len: usize, out: &mut Vec<u8>) -> Result<usize, FrameError> {
        let mut left = len;
        while left > 0 {
            if !self.has_buffered() && !self.fill().await? {
                return Err(FrameError::Partial { len, missing: left });
            }
            let take = left.min(self.available().len());
            let keep = self.limit.saturating_sub(out.len()).min(take);
            out.extend_from_slice(&self.available()[..keep]);
            self.consume(take);
            left -= take;
        }
        Ok(len)
    }

    async fn read_line(&mut self, out: &mut Vec<u8>) -> Result<usize, FrameError> {
        let mut len = 0;
        loop {
            if !self.has_buffered() && !self.fill().await? {
                // The last line may end without a newline.
                return Ok(len);
            }
            let avail = self.available();
            let (body, done) = match avail.iter().position(|&b| b == b'\n') {
                Some(i) => (i, true),
                None => (avail.len(), false),
            };
            let keep = self.limit.saturating_sub(out.len()).min(body);
            out.extend_from_slice(&avail[..keep]);
            len += body;
            self.consume(body + usize::from(done));
            if done {
                if out.last() == Some(&b'\r') {
                    out.pop();
                    len -= 1;
                }
                return Ok(len);
            }
        }
    }
}

/// `LEN SP` before a `<`: octet counting. A line that merely starts with digits (a date, a
/// number) is not taken for a count.
fn octet_count(b: &[u8]) -> Option<(usize, usize)> {
    let digits = b.iter().take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 || digits > MAX_LEN_DIGITS || b[0] == b'0' {
        return None;
    }
    if b.get(digits) != Some(&b' ') || b.get(digits + 1) != Some(&b'<') {
        return None;
    }
    let len = std::str::from_utf8(&b[..digits]).ok()?.parse().ok()?;
    Some((len, digits + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn frames(input: &[u8], limit: usize) -> (Vec<(String, usize)>, Option<String>) {
        // A tiny reader chunk size, so frames cross read boundaries.
        let reader = tokio_test_reader(input);
        let mut r = FrameReader::new(reader, limit);
        let mut out = Vec::new();
        let mut got = Vec::new();
        loop {
            match r.next(&mut out).await {
                Ok(Some(len)) => got.push((String::from_utf8_lossy(&out).into_owned(), len)),
                Ok(None) => return (got, None),
                Err(e) => return (got, Some(e.to_string())),
            }
        }
    }

    /// A reader that returns at most 3 bytes a read.
    fn tokio_test_reader(input: &[u8]) -> impl AsyncRead + Unpin {
        struct Trickle(Vec<u8>, usize);
        impl AsyncRead for Trickle {
            fn poll_read(
                mut self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
                buf: &mut tokio::io::ReadBuf<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                let at = self.1;
                let n = (self.0.len() - at).min(3).min(buf.remaining());
                buf.put_slice(&self.0[at..at + n]);
                self.1 += n;
                std::task::Poll::Ready(Ok(()))
            }
        }
        Trickle(input.to_vec(), 0)
    }

    #[tokio::test]
    async fn octet_counting_and_lines_mix_on_one_connection() {
        let input = b"11 <13>a\nb c d2024-01-01 line one\r\n\n<13>two\n14 <13>last frame";
        let (got, err) = frames(input, 1024).await;
        assert_eq!(err, None);
        assert_eq!(
            got,
            vec![
                ("<13>a\nb c d".to_string(), 11),
                ("2024-01-01 line one".to_string(), 19),
                ("<13>two".to_string(), 7),
                ("<13>last frame".to_string(), 14),
            ]
        );
    }

    #[tokio::test]
    async fn long_frames_are_cut_and_their_length_told() {
        let mut input = format!("{} <13>", 4 + 1000).into_bytes();
        input.extend(vec![b'x'; 1000]);
        input.extend_from_slice(b"\n");
        input.extend(vec![b'y'; 2000]);
        input.extend_from_slice(b"\nok\n");
        let (got, err) = frames(&input, 8).await;
        assert_eq!(err, None);
        assert_eq!(
            got,
            vec![
                ("<13>xxxx".to_string(), 1004),
                ("yyyyyyyy".to_string(), 2000),
                ("ok".to_string(), 2),
            ]
        );
    }

    #[tokio::test]
    async fn a_sender_gone_mid_frame_is_an_error_not_a_line() {
        let (got, err) = frames(b"<13>whole\n100 <13>only part", 1024).await;
        assert_eq!(got, vec![("<13>whole".to_string(), 9)]);
        assert_eq!(
            err.as_deref(),
            Some("the connection ended 87 bytes before the end of a 100-byte frame")
        );
    }
}
