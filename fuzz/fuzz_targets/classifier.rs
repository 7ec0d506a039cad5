//! The classifier on arbitrary text in every position of a conversation:
//! a class with strong_score in [0, 1], never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let split = text
        .char_indices()
        .nth(text.chars().count() / 2)
        .map_or(0, |(i, _)| i);
    let (a, b) = text.split_at(split);
    let c = tollgate::classify::classify(&tollgate::classify::Conversation {
        system: a,
        last_user: b,
        earlier: a,
        turns: data.len() % 7,
        has_tools: data.first().is_some_and(|x| x & 1 == 1),
        wants_json: data.first().is_some_and(|x| x & 2 == 2),
        max_tokens: data.get(1).map(|x| u32::from(*x) * 100),
        prompt_tokens: data.len() as u32,
    });
    assert!((0.0..=1.0).contains(&c.strong_score));
});
