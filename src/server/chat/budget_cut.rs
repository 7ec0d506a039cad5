//! A stream under a budget is cut before the frame that would make it
//! cost more than its reservation, so a budget holds even while a stream
//! is still running.

use futures::StreamExt;

use super::settle::{Close, Tab};
use crate::error::ApiError;
use crate::upstream::{SseStream, Usage};

/// Stops `s` before the frame that would make its cost outgrow its
/// reservation: the client gets a final error event instead, and the
/// tab is closed with what was sent (`budget_cut`). Completion tokens
/// are counted as text deltas forwarded (one token each at least), each
/// found by `needle`: `"content":"` for chat, `"text":"` for legacy
/// completions, `"delta":"` for Responses events.
pub fn guard_on(tab: &Tab, s: SseStream, needle: &'static [u8]) -> SseStream {
    let Some((limit, price, prompt)) = tab.stream_limit() else {
        return s;
    };
    let tab = tab.clone();
    let state = (s, 0u64, false);
    Box::pin(futures::stream::unfold(
        state,
        move |(mut s, sent, done)| {
            let tab = tab.clone();
            async move {
                if done {
                    return None;
                }
                let frame = s.next().await?;
                let more = content_deltas(&frame, needle);
                if more > 0 && price.cost(prompt, sent + more) > limit {
                    tab.close(Close {
                        usage: Some(Usage::new(prompt, sent)),
                        counted: true,
                        status: 200,
                        ending: "budget_cut",
                        ..Close::default()
                    });
                    let err = ApiError::insufficient_quota(
                        "This stream was stopped: continuing would cost more than the budget reserved for it.",
                        None,
                    )
                    .code("budget_exceeded");
                    return Some((crate::upstream::sse::error_frame(&err), (s, sent, true)));
                }
                Some((frame, (s, sent + more, false)))
            }
        },
    ))
}

/// Content deltas in an SSE frame: `"content":"` followed by text.
fn content_deltas(frame: &[u8], needle: &[u8]) -> u64 {
    let mut n = 0;
    let mut i = 0;
    while let Some(off) = frame[i..].windows(needle.len()).position(|w| w == needle) {
        let at = i + off + needle.len();
        if frame.get(at).is_some_and(|b| *b != b'"') {
            n += 1;
        }
        i = at;
    }
    n
}
