//! The classifiers on a ~500-token prompt, a short one and a 40 KB one:
//! the keyword classifier alone, and the learned router (embedding plus
//! heads; needs models/wordllama from scripts/fetch-test-model, skipped
//! without it). "unseen words" makes every word new to the tokenizer's
//! word cache: the worst case.
//!
//!   cargo bench --bench classify

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use tollgate::classify::{classify, load_router, Conversation, Router, RouterLoad};

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

fn learned(c: &mut Criterion) {
    let router: Router = match load_router(&Router::default_dir()) {
        RouterLoad::Loaded(r) => *r,
        RouterLoad::Missing(m) | RouterLoad::Broken(m) => {
            eprintln!("skipping the learned router: {m}");
            return;
        }
    };
    let long = prompt_500_tokens();
    fn conv(text: &str) -> Conversation<'_> {
        Conversation {
            system: "You are a helpful assistant.",
            last_user: text,
            turns: 2,
            prompt_tokens: 500,
            ..Conversation::default()
        }
    }
    c.bench_function("learned router 500-token prompt", |b| {
        b.iter(|| router.classify(black_box(&conv(&long))))
    });
    c.bench_function("learned router short prompt", |b| {
        b.iter(|| {
            router.classify(black_box(&conv(
                "Write a Python function that merges two sorted lists.",
            )))
        })
    });
    let huge = long.repeat(20);
    c.bench_function("learned router 40 KB prompt", |b| {
        b.iter(|| router.classify(black_box(&conv(&huge))))
    });
    let mut n = 0u64;
    c.bench_function("learned router 500-token prompt, unseen words", |b| {
        b.iter_batched(
            || {
                n += 1;
                long.split(' ')
                    .map(|w| format!("{w}{n}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            },
            |text| router.classify(black_box(&conv(&text))),
            criterion::BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, bench, learned);
criterion_main!(benches);
