//! An incremental Server-Sent Events parser: bytes in (split anywhere),
//! complete `data:` payloads out. Only the `data` field matters for the
//! OpenAI wire format; comments and other fields are skipped.

use bytes::Bytes;

/// One SSE event carrying `data`: `data: <data>\n\n`.
pub fn frame(data: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(data.len() + 8);
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

/// One SSE event with its type, as the Responses API sends them:
/// `event: <kind>\ndata: <data>\n\n`.
pub fn typed_frame(kind: &str, data: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(data.len() + kind.len() + 16);
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

/// An OpenAI-shaped error as one SSE event: how a stream whose headers
/// are already sent reports that it ended badly. The one place these
/// frames are built.
pub fn error_frame(err: &crate::error::ApiError) -> Bytes {
    frame(&serde_json::to_vec(&err.body()).unwrap_or_default())
}

#[derive(Debug, Default)]
pub struct SseParser {
    buf: Vec<u8>,
    data: Vec<u8>,
    has_data: bool,
}

/// One event's data, and the event itself when it arrived as one plain
/// frame (`data: <data>\n\n`) inside one read: both slices of that read,
/// so it can go on as it came, without a copy.
pub struct Event {
    pub data: Bytes,
    pub frame: Option<Bytes>,
}

impl SseParser {
    /// `feed` for a read that can be kept: events that arrived whole and
    /// plain come out as slices of it; the rest as `feed` makes them.
    pub fn feed_bytes(&mut self, chunk: &Bytes, mut on_event: impl FnMut(Event)) {
        let mut at = 0;
        if self.buf.is_empty() && !self.has_data {
            while let Some((data, end)) = plain_frame(&chunk[at..]) {
                on_event(Event {
                    data: chunk.slice(at + data.0..at + data.1),
                    frame: Some(chunk.slice(at..at + end)),
                });
                at += end;
            }
        }
        self.feed(&chunk[at..], |data| {
            on_event(Event {
                data: Bytes::from(data),
                frame: None,
            })
        });
    }

    /// Feeds a chunk; calls `on_event` with each complete event's data.
    pub fn feed(&mut self, chunk: &[u8], mut on_event: impl FnMut(Vec<u8>)) {
        self.buf.extend_from_slice(chunk);
        let mut start = 0;
        while let Some(off) = self.buf[start..].iter().position(|&b| b == b'\n') {
            let end = start + off;
            let mut line = &self.buf[start..end];
            if let [rest @ .., b'\r'] = line {
                line = rest;
            }
            if line.is_empty() {
                if self.has_data {
                    on_event(std::mem::take(&mut self.data));
                    self.has_data = false;
                }
            } else if let Some(v) = line.strip_prefix(b"data:") {
                let v = v.strip_prefix(b" ").unwrap_or(v);
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(v);
                self.has_data = true;
            }
            start = end + 1;
        }
        self.buf.drain(..start);
    }
}

/// The span of the data and the end of a plain frame at the start of
/// `s`: `data: `, one line without a carriage return, a blank line.
fn plain_frame(s: &[u8]) -> Option<((usize, usize), usize)> {
    let rest = s.strip_prefix(b"data: ")?;
    let nl = rest.iter().position(|&b| b == b'\n')?;
    let line = &rest[..nl];
    (rest.get(nl + 1) == Some(&b'\n') && !line.contains(&b'\r'))
        .then_some(((6, 6 + nl), 6 + nl + 2))
}

#[cfg(test)]
mod tests;
