//! Unit tests of `bounds`.

use super::*;

fn usage(p: u64, c: u64) -> Usage {
    Usage::new(p, c)
}

fn want(bytes: bool, counted: u64, cl100k: u64, completion: u64) -> Want {
    Want {
        shape: Shape::Plain,
        bytes,
        counted,
        cl100k,
        completion,
        // Text of about four bytes a token.
        prompt_cap: if bytes { counted } else { counted * 4 },
        completion_cap: u64::MAX,
    }
}

#[test]
fn the_byte_bound_tightens_to_what_was_billed_and_never_below() {
    let b = Bounds::new(1);
    let first = b.hold(0, want(true, 400, 100, 16));
    assert_eq!((first.prompt, first.basis), (400, 100));
    // Billed 2× cl100k: once verified, holds reserve exactly that.
    for _ in 0..VERIFY_AFTER {
        assert_eq!(b.hold(0, want(true, 400, 50, 16)).prompt, 400);
        b.settle(0, &first, usage(200, 16), Nanos(10), Nanos(20), 1);
    }
    assert_eq!(b.hold(0, want(true, 400, 50, 16)).prompt, 100);
    // A lower ratio later does not loosen it.
    b.settle(0, &first, usage(120, 16), Nanos(10), Nanos(20), 1);
    assert_eq!(b.hold(0, want(true, 400, 50, 16)).prompt, 100);
    // Never above the byte bound.
    assert_eq!(b.hold(0, want(true, 150, 100, 16)).prompt, 150);
}

#[test]
fn an_overrun_is_counted_logged_once_a_day_and_raises_the_bounds() {
    let b = Bounds::new(2);
    let h = b.hold(1, want(false, 10, 10, 1));
    assert_eq!(
        h,
        Hold {
            prompt: 40,
            basis: 10,
            completion: 1,
            shape: Shape::Plain,
            trusted: 10,
        },
        "the byte bound until verified"
    );
    // An upstream that ignored max_tokens: 7 billed for 1 reserved.
    let s = b.settle(1, &h, usage(10, 7), Nanos(170), Nanos(110), 5);
    assert_eq!((s.over, s.log, s.learned), (Nanos(60), true, true));
    let s = b.settle(1, &h, usage(10, 7), Nanos(170), Nanos(110), 5);
    assert!(!s.log, "once a day");
    assert!(b.settle(1, &h, usage(10, 7), Nanos(170), Nanos(110), 6).log);
    assert_eq!(b.overrun(1), Nanos(180));
    assert_eq!(b.hold(1, want(false, 10, 10, 1)).completion, 7);
    assert_eq!(b.hold(1, want(false, 10, 10, 3)).completion, 21);
    // An exact counter billed over: raised by the ratio.
    b.settle(1, &h, usage(15, 1), Nanos(0), Nanos(0), 6);
    assert_eq!(b.hold(1, want(false, 20, 20, 1)).prompt, 30);
    assert_eq!(b.overrun(0), Nanos::ZERO);
}

#[test]
fn a_known_tokenizer_holds_the_byte_bound_until_settlements_verify_it() {
    let b = Bounds::new(2);
    // cl100k counts 100; the byte bound is 400.
    let w = Want {
        prompt_cap: 400,
        ..want(false, 100, 100, 1)
    };
    for _ in 0..VERIFY_AFTER {
        let h = b.hold(0, w);
        assert_eq!((h.prompt, h.basis), (400, 100), "not yet verified");
        // An upstream billing twice the count it claims.
        b.settle(0, &h, usage(200, 1), Nanos(0), Nanos(0), 1);
    }
    assert_eq!(b.hold(0, w).prompt, 200, "the count × the highest ratio");
    assert_eq!(b.verified(0), (true, 2000));
    // An honest upstream: the count itself, never below it.
    for _ in 0..VERIFY_AFTER {
        let h = b.hold(1, w);
        b.settle(1, &h, usage(90, 1), Nanos(0), Nanos(0), 1);
    }
    assert_eq!(b.hold(1, w).prompt, 100);
    // What one process learned, another starts from.
    let other = Bounds::new(1);
    for k in b.learned(0) {
        other.merge(0, &k);
    }
    assert_eq!(other.hold(0, w).prompt, 200);
    assert!(!Bounds::new(1).verified(0).0);
}

#[test]
fn a_rich_request_never_raises_plain_text_holds_and_caps_hold() {
    let b = Bounds::new(1);
    // An image billed 800 tokens on a 10-token text prompt, and four
    // choices billed where one was bounded.
    let rich = Want {
        shape: Shape::Rich,
        ..want(false, 10, 10, 5)
    };
    for _ in 0..VERIFY_AFTER {
        let h = b.hold(0, rich);
        b.settle(0, &h, usage(800, 20), Nanos(0), Nanos(0), 1);
    }
    assert_eq!(b.hold(0, rich).prompt, 800, "rich requests learn");
    let plain = Want {
        prompt_cap: 60,
        completion_cap: 100,
        ..want(false, 10, 10, 5)
    };
    assert_eq!(
        (b.hold(0, plain).prompt, b.hold(0, plain).completion),
        (60, 5),
        "plain text is untouched (its byte bound until verified)"
    );
    // Plain billing itself past the byte bound or the model's output
    // can still only raise holds up to those caps.
    let h = b.hold(0, plain);
    b.settle(0, &h, usage(10_000, 5_000), Nanos(0), Nanos(0), 1);
    let after = b.hold(0, plain);
    assert_eq!((after.prompt, after.completion), (60, 100));
}
