//! The default classifier on a ~500-token prompt (and a short one).
//!
//!   cargo bench --bench classify

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use tollgate::classify::{classify, Conversation};

fn prompt_500_tokens() -> String {
    let para = "Our quarterly report covers revenue, costs and hiring across three regions. \
        Revenue grew in the north and the west, while the south stayed flat because two large \
        customers delayed renewals. Costs rose with the new office and cloud spending. ";
    let mut s = String::from(
        "You are reviewing the text below. Summarize it in exactly 3 bullet points, \
         then list any numbers it mentions, and do not add facts that are not in the text.\n\n",
    );
    while s.len() < 2000 {
        s.push_str(para);
    }
    s
}

fn bench(c: &mut Criterion) {
    let long = prompt_500_tokens();
    let system = "You are a helpful assistant.";
    c.bench_function("classify 500-token prompt", |b| {
        b.iter(|| {
            classify(black_box(&Conversation {
                system,
                last_user: &long,
                turns: 2,
                ..Conversation::default()
            }))
        })
    });
    c.bench_function("classify short prompt", |b| {
        b.iter(|| {
            classify(black_box(&Conversation {
                last_user: "Write a Python function that merges two sorted lists.",
                turns: 1,
                ..Conversation::default()
            }))
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
