//! Unit tests of router learning's pure parts.

use super::*;

#[test]
fn grades_are_read_from_the_first_object_and_checked() {
    assert_eq!(judge::grades("{\"A\": 8, \"B\": 3}").unwrap(), (8.0, 3.0));
    assert_eq!(
        judge::grades("Sure. {\"A\": \"7\", \"B\": 10} is my verdict").unwrap(),
        (7.0, 10.0)
    );
    for bad in [
        "",
        "A: 8, B: 3",
        "{\"A\": 0, \"B\": 3}",
        "{\"A\": 11, \"B\": 3}",
        "{\"A\": 8}",
    ] {
        assert!(judge::grades(bad).is_err(), "{bad}");
    }
}

#[test]
fn a_stream_is_read_to_its_text_and_its_end() {
    let (mut text, mut done) = (String::new(), false);
    for f in [
        "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n",
        "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n",
        ": keep-alive\n\n",
        "data: {\"choices\":[{\"delta\":{\"content\":\"lo\"}}]}\n\n",
        "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3}}\n\n",
    ] {
        read_frame(&Bytes::from(f), &mut text, &mut done);
        assert!(!done);
    }
    read_frame(&Bytes::from("data: [DONE]\n\n"), &mut text, &mut done);
    assert_eq!((text.as_str(), done), ("Hello", true));
}

#[test]
fn the_judge_sees_both_answers_and_a_long_one_is_cut() {
    let chat = ChatRequest::parse(
        br#"{"model":"auto","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Name a prime."}]}"#,
    )
    .unwrap();
    let long = "é".repeat(10_000);
    let r = judge::request("judge-model", &chat, "Seven.", &long);
    let user = r["messages"][1]["content"].as_str().unwrap();
    assert!(user.contains("[system]\nBe brief.") && user.contains("[user]\nName a prime."));
    assert!(user.contains("## Answer A\nSeven.") && user.contains("## Answer B\n"));
    assert!(user.len() < 13 * 1024, "{}", user.len());
    assert_eq!(r["model"], "judge-model");
    assert_eq!(r["temperature"], 0);
}

#[test]
fn a_long_stream_keeps_only_what_the_judge_sees() {
    let (mut text, mut done) = (String::new(), false);
    let frame = Bytes::from("data: {\"choices\":[{\"delta\":{\"content\":\"0123456789\"}}]}\n\n");
    for _ in 0..10_000 {
        read_frame(&frame, &mut text, &mut done);
    }
    assert!(text.len() >= judge::MAX_PART && text.len() < judge::MAX_PART + 10);
    assert!(text.starts_with("0123456789"));
}
