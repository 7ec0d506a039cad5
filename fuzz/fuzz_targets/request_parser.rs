//! The chat request body parser on arbitrary bytes: an answer or an
//! OpenAI-shaped error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match tollgate::request::ChatRequest::parse(data) {
        Ok(chat) => {
            // What the gateway derives from a parsed request must not panic either.
            let _ = tollgate::classify::tokens::count_chat(chat.messages());
            let texts = tollgate::classify::Texts::of(&chat);
            let c = tollgate::classify::classify(&texts.conversation(&chat, 0));
            assert!((0.0..=1.0).contains(&c.strong_score));
        }
        Err(e) => assert!(!e.message.is_empty()),
    }
});
