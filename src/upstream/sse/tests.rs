//! Unit tests of `sse`.

use super::*;

/// `text` as two reads, split at every byte, with where it was split.
fn in_two_reads(text: &[u8]) -> impl Iterator<Item = (usize, [&[u8]; 2])> {
    (0..text.len()).map(move |at| (at, [&text[..at], &text[at..]]))
}

#[test]
fn parses_events_split_across_chunks() {
    let text = b"data: {\"a\":1}\n\n: comment\r\ndata: x\r\n\r\ndata: [DONE]\n\n";
    for (split, reads) in in_two_reads(text) {
        let mut p = SseParser::default();
        let mut out = Vec::new();
        for read in reads {
            p.feed(read, |e| out.push(e));
        }
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

#[test]
fn whole_plain_frames_come_out_as_slices_of_the_read() {
    let text = b"data: {\"a\":1}\n\ndata: x\r\n\r\ndata: {\"b\":2}\n\ndata: [DONE]\n\n";
    for (split, reads) in in_two_reads(text) {
        let mut p = SseParser::default();
        let mut out = Vec::new();
        for part in reads {
            let read = Bytes::copy_from_slice(part);
            p.feed_bytes(&read, |e| {
                if let Some(f) = &e.frame {
                    assert_eq!(&f[..], [b"data: ", &e.data[..], b"\n\n"].concat());
                }
                out.push((e.data.to_vec(), e.frame.is_some()));
            });
        }
        let data: Vec<&[u8]> = out.iter().map(|(d, _)| d.as_slice()).collect();
        assert_eq!(
            data,
            [&b"{\"a\":1}"[..], b"x", b"{\"b\":2}", b"[DONE]"],
            "split at {split}"
        );
    }
    // Read whole, the plain frames before the odd one are slices.
    let mut p = SseParser::default();
    let mut plain = Vec::new();
    p.feed_bytes(&Bytes::from_static(text), |e| plain.push(e.frame.is_some()));
    assert_eq!(plain, [true, false, false, false]);
}
