//! Unit tests of `yaml`.

use super::*;

#[test]
fn converts_scalars_and_records_positions() {
    let text = "a: 1\nb:\n  - x\n  - 'true'\n  - true\nc: { d: 1.5, e: ~ }\n";
    let doc = parse_with_positions(text).unwrap();
    assert_eq!(
        doc.value,
        serde_json::json!({"a": 1, "b": ["x", "true", true], "c": {"d": 1.5, "e": null}})
    );
    // Without positions, the same value.
    assert_eq!(parse(text).unwrap().value, doc.value);
    assert_eq!(doc.position("a"), Pos { line: 1, col: 1 });
    assert_eq!(doc.position("b[1]"), Pos { line: 4, col: 5 });
    assert_eq!(doc.position("c.e"), Pos { line: 6, col: 14 });
    // Unknown paths fall back to the nearest ancestor.
    assert_eq!(doc.position("b[1].zzz"), Pos { line: 4, col: 5 });
}

#[test]
fn rejects_duplicate_keys_with_position() {
    let err = parse("a: 1\na: 2\n").unwrap_err();
    assert_eq!(err.pos.line, 2);
    assert!(err.message.contains("duplicate key"));
}

#[test]
fn resolves_aliases() {
    let doc = parse("base: &p { input: 1 }\nother: *p\n").unwrap();
    assert_eq!(doc.value["other"], serde_json::json!({"input": 1}));
}
