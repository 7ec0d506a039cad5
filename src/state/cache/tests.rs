//! Unit tests of `cache`.

use super::*;
use serde_json::json;

#[test]
fn directives() {
    let h = http::HeaderMap::new();
    let det = json!({"temperature": 0});
    assert_eq!(
        Directive::of(&h, det.as_object().unwrap()),
        Directive {
            lookup: true,
            store: true
        }
    );
    assert_eq!(
        Directive::of(&h, &Map::new()),
        Directive {
            lookup: false,
            store: false
        }
    );
    assert_eq!(
        Directive::of(&h, json!({"temperature": 0, "n": 2}).as_object().unwrap()),
        Directive {
            lookup: false,
            store: false
        }
    );
    let mut force = http::HeaderMap::new();
    force.insert("x-tollgate-cache", http::HeaderValue::from_static("force"));
    assert!(Directive::of(&force, json!({"temperature": 1}).as_object().unwrap()).lookup);
    let mut nc = http::HeaderMap::new();
    nc.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-cache"),
    );
    assert_eq!(
        Directive::of(&nc, det.as_object().unwrap()),
        Directive {
            lookup: false,
            store: true
        }
    );
    let mut ns = http::HeaderMap::new();
    ns.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    assert_eq!(
        Directive::of(&ns, det.as_object().unwrap()),
        Directive {
            lookup: false,
            store: false
        }
    );
}
