//! The policy loader (YAML parse, shape, compile) on arbitrary text: a
//! policy or errors with messages, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) =
        tollgate::policy::load_str("fuzz.yaml", text, std::path::Path::new("."), &|_| None)
    {
        assert!(!e.to_string().is_empty());
    }
});
