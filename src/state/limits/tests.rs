//! Unit tests of `limits`.

use super::*;
use crate::policy::Target;

#[test]
fn reset_text_reads_like_openai() {
    assert_eq!(reset_text(Duration::from_millis(20)), "20ms");
    assert_eq!(reset_text(Duration::from_millis(1500)), "2s");
    assert_eq!(reset_text(Duration::from_secs(360)), "6m0s");
}

#[tokio::test]
async fn memory_limits_admit_a_burst_then_refuse() {
    let def = RateLimit {
        name: "key:*".into(),
        scope: Scope::Key(Target::Each),
        requests_per_minute: Some(3),
        tokens_per_minute: Some(100),
    };
    let l = LimitGuard::new(vec![def.clone()], Arc::new(MemoryLimits::new(vec![def])));
    let s = Subject {
        key: "k",
        team: "t",
        model: None,
    };
    for left in [2, 1, 0] {
        let v = l.admit(s, 10).await.unwrap();
        assert_eq!(v.requests.unwrap().remaining, left);
    }
    match l.admit(s, 10).await {
        Err(Denial::Limited(Limited {
            kind: Kind::Requests,
            retry_after: Some(d),
            ..
        })) => {
            assert!(
                d <= Duration::from_secs(20) && d > Duration::from_secs(15),
                "{d:?}"
            )
        }
        other => panic!("{other:?}"),
    }
    // Another key has its own bucket; a request over the token limit
    // can never pass.
    let other = Subject { key: "k2", ..s };
    match l.admit(other, 101).await {
        Err(Denial::Limited(Limited {
            kind: Kind::Tokens,
            retry_after: None,
            ..
        })) => {}
        r => panic!("{r:?}"),
    }
}
