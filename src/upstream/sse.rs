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

impl SseParser {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_events_split_across_chunks() {
        let text = b"data: {\"a\":1}\n\n: comment\r\ndata: x\r\n\r\ndata: [DONE]\n\n";
        for split in 0..text.len() {
            let mut p = SseParser::default();
            let mut out = Vec::new();
            p.feed(&text[..split], |e| out.push(e));
            p.feed(&text[split..], |e| out.push(e));
            assert_eq!(
                out,
                vec![b"{\"a\":1}".to_vec(), b"x".to_vec(), b"[DONE]".to_vec()],
                "split at {split}"
            );
        }
    }

    #[test]
    fn joins_multiline_data() {
        let mut p = SseParser::default();
        let mut out = Vec::new();
        p.feed(b"data: a\ndata: b\n\n", |e| out.push(e));
        assert_eq!(out, vec![b"a\nb".to_vec()]);
    }
}
