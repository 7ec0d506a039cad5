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

/// ~500 tokens of prose that does not repeat itself.
const VARIED: &str = "Please review the following incident summary and propose next steps. \
On Tuesday morning the payments service began returning intermittent timeouts shortly after a \
routine deployment. Engineers first suspected the new database index, because latency graphs \
showed slow queries against the ledger table, yet rolling the index back changed nothing. A \
second look revealed that the connection pool had been reduced from forty to eight during a \
configuration cleanup, so bursts of checkout traffic queued behind long-running reconciliation \
jobs. Customers in Europe noticed first, since their evening peak overlapped with the nightly \
batch window. Support received roughly three hundred tickets within two hours, and the status \
page lagged behind reality by forty minutes. Restoring the pool size recovered throughput \
within minutes, although a backlog of retries briefly doubled the error rate before settling. \
Finance later confirmed that no duplicate charges were captured, thanks to idempotency keys on \
every request. However, twelve merchants reported delayed payouts, and two enterprise accounts \
asked for a written explanation. The on-call rotation also exposed gaps: the runbook referenced \
dashboards that no longer exist, alerts fired to a retired channel, and nobody owned the \
configuration repository. Write a concise postmortem with a timeline, root cause, customer \
impact, and five concrete action items with owners and deadlines. Keep the tone factual and \
blameless, avoid jargon where plain words work, and finish with a short paragraph on how we \
will verify that each action item actually reduced risk over the next quarter. For context, the \
team migrated from a monolith eighteen months ago; the payments service now depends on an \
inventory cache, a fraud scoring model hosted by a vendor, and a message queue whose consumers \
were upgraded last week. Mention whether any of those contributed, and if the evidence is \
inconclusive, say which measurements would settle it. Include a table comparing mean, median and \
worst latency before, during and after the incident, using the figures in the appendix: 180 ms, \
95 ms and 2.4 s before; 3.1 s, 1.7 s and 30 s during; 210 ms, 110 ms and 2.9 s after. Finally, \
suggest one experiment we could run in staging to reproduce the failure safely.";

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
    c.bench_function("learned router 500-token varied prompt", |b| {
        b.iter(|| router.classify(black_box(&conv(VARIED))))
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
