//! `/dashboard`: one self-contained HTML page, charts drawn as inline SVG
//! on the server. No scripts, no external assets: it renders the same in
//! any browser, offline, and needs no second authenticated request.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use crate::ledger::Group;
use crate::money::Nanos;
use crate::report::{savings, savings_pct, usd_f64, Report};
use crate::state::budgets::Status;

mod charts;
use charts::{route_mix, savings_per_day, spend_per_day};

pub struct Data<'a> {
    pub by_day_model: &'a Report,
    pub by_day: &'a Report,
    pub by_task_model: &'a Report,
    pub by_key: &'a Report,
    pub budgets: &'a [Status],
    pub baseline: &'a str,
}

const PALETTE: &[&str] = &[
    "#4269d0", "#efb118", "#ff725c", "#6cc5b0", "#3ca951", "#ff8ab7", "#a463f2", "#97bbf5",
    "#9c6b4e", "#9498a0",
];

pub(super) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Money for people: `$12.34`, `$0.0042`.
pub(super) fn money(n: Nanos) -> String {
    let v = usd_f64(n);
    if v >= 100.0 {
        format!("${v:.0}")
    } else if v >= 1.0 {
        format!("${v:.2}")
    } else {
        format!("${v:.4}")
    }
}

pub fn render(d: &Data<'_>) -> String {
    let t = &d.by_day.total;
    let models: BTreeSet<&str> = d
        .by_day_model
        .groups
        .iter()
        .chain(&d.by_task_model.groups)
        .map(|g| g.keys[1].as_str())
        .collect();
    let color: BTreeMap<&str, &str> = models
        .iter()
        .enumerate()
        .map(|(i, m)| (*m, PALETTE[i % PALETTE.len()]))
        .collect();
    let mut html = String::with_capacity(32 * 1024);
    let _ = write!(
        html,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>tollgate · spend</title>
<style>
body{{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}}
header{{background:#1d2330;color:#fff;padding:14px 28px;display:flex;align-items:baseline;gap:16px}}
header h1{{font-size:18px;margin:0}} header span{{opacity:.7}}
main{{padding:20px 28px;display:grid;grid-template-columns:1fr 1fr;gap:20px;max-width:1400px}}
.card{{background:#fff;border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.08);padding:16px 18px}}
.wide{{grid-column:1/3}}
h2{{font-size:15px;margin:0 0 10px}}
.kpis{{display:flex;gap:36px;flex-wrap:wrap}} .kpi b{{display:block;font-size:26px}} .kpi span{{color:#5b6475}}
.good{{color:#1a7f37}} .bad{{color:#c0392b}}
table{{border-collapse:collapse;width:100%}} th,td{{padding:5px 8px;text-align:right;border-bottom:1px solid #eceef2}}
th:first-child,td:first-child,th.l,td.l{{text-align:left}} th{{color:#5b6475;font-weight:600}}
.legend{{display:flex;gap:14px;flex-wrap:wrap;margin-top:6px;color:#5b6475}} .legend i{{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:5px}}
.bar{{background:#e6ebf5;border-radius:3px;height:8px}} .bar div{{background:#4269d0;height:8px;border-radius:3px}}
.empty{{color:#5b6475;padding:30px 0;text-align:center}}
</style></head><body>
<header><h1>tollgate</h1><span>spend and savings, {} to {} UTC · baseline: {}</span></header><main>"#,
        crate::clock::day_string(d.by_day.from),
        if d.by_day.to == i64::MAX {
            "now".to_string()
        } else {
            crate::clock::day_string(d.by_day.to - 1)
        },
        esc(d.baseline)
    );
    kpis(&mut html, t, d.baseline);
    if !d.by_key.unpriced.is_empty() {
        html.push_str(r#"<section class="card wide"><h2 class="bad">Unpriced models</h2><div>"#);
        for (m, n) in &d.by_key.unpriced {
            let _ = write!(
                html,
                "{}: {n} requests charged at the baseline's price (no known price; give it <code>price:</code>). ",
                esc(m)
            );
        }
        html.push_str("</div></section>");
    }
    if let Some(l) = &d.by_key.learning {
        let _ = write!(
            html,
            r#"<section class="card wide"><h2>Router learning</h2><div>{} shadow and judge calls, ${} (key <code>{}</code>, under the shadow budget; included above).</div></section>"#,
            l.requests,
            l.cost,
            crate::policy::shadow::KEY
        );
    }
    spend_per_day(&mut html, d.by_day_model, &color);
    savings_per_day(&mut html, d.by_day, d.baseline);
    route_mix(&mut html, d.by_task_model, &color);
    top_keys(&mut html, d.by_key);
    budgets(&mut html, d.budgets);
    html.push_str("</main></body></html>\n");
    html
}

fn kpis(html: &mut String, t: &Group, baseline: &str) {
    let pct = savings_pct(t);
    let saved_class = if savings(t).starts_with('-') {
        "bad"
    } else {
        "good"
    };
    let hit = if t.requests == 0 {
        0.0
    } else {
        100.0 * t.cache_hits as f64 / t.requests as f64
    };
    let _ = write!(
        html,
        r#"<section class="card wide"><div class="kpis">
<div class="kpi"><b>{}</b><span>spent</span></div>
<div class="kpi"><b>{}</b><span>on {} alone</span></div>
<div class="kpi"><b class="{saved_class}">{}{}</b><span>saved{}</span></div>
<div class="kpi"><b>{}</b><span>requests</span></div>
<div class="kpi"><b>{}</b><span>tokens in / out</span></div>
<div class="kpi"><b>{hit:.1}%</b><span>cache hits</span></div>
<div class="kpi"><b>{}%</b><span>prompt tokens cached by the provider</span></div>
<div class="kpi"><b class="good">{}</b><span>saved by caching (gateway cache and provider prompt cache)</span></div>
<div class="kpi"><b>{}</b><span>quality retained vs {} (router's estimate)</span></div>
</div></section>"#,
        money(t.cost),
        money(t.baseline_cost),
        esc(baseline),
        if saved_class == "bad" { "−" } else { "" },
        money(Nanos(t.baseline_cost.0.abs_diff(t.cost.0))),
        if pct.is_empty() {
            String::new()
        } else {
            format!(" ({pct}%)")
        },
        t.requests,
        format_args!("{} / {}", t.prompt_tokens, t.completion_tokens),
        match crate::report::cached_share(t).as_str() {
            "" => "0.0".to_string(),
            c => c.to_string(),
        },
        money(crate::report::caching_saved(t)),
        match crate::report::quality_retained(t).as_str() {
            "" => "–".to_string(),
            q => format!("{q}%"),
        },
        esc(baseline),
    );
}

fn top_keys(html: &mut String, r: &Report) {
    html.push_str(r#"<section class="card"><h2>Top keys by spend</h2>"#);
    if r.groups.is_empty() {
        html.push_str(r#"<div class="empty">No requests in this period yet.</div></section>"#);
        return;
    }
    html.push_str(r#"<table><tr><th>key</th><th class="l">team</th><th>requests</th><th>spent</th><th>saved</th><th style="width:30%"></th></tr>"#);
    let max = r.groups.first().map_or(1, |g| g.cost.0.max(1));
    for g in r.groups.iter().take(10) {
        let _ = write!(
            html,
            r#"<tr><td>{}</td><td class="l">{}</td><td>{}</td><td>{}</td><td>{}%</td><td><div class="bar"><div style="width:{:.1}%"></div></div></td></tr>"#,
            esc(&g.keys[0]),
            esc(&g.keys[1]),
            g.requests,
            money(g.cost),
            savings_pct(g),
            100.0 * g.cost.0 as f64 / max as f64
        );
    }
    html.push_str("</table></section>");
}

fn budgets(html: &mut String, budgets: &[Status]) {
    html.push_str(r#"<section class="card wide"><h2>Budgets</h2>"#);
    if budgets.is_empty() {
        html.push_str(r#"<div class="empty">No budgets in this policy.</div></section>"#);
        return;
    }
    html.push_str(r#"<table><tr><th>budget</th><th class="l">subject</th><th>limit</th><th>spent</th><th>reserved</th><th>left</th><th class="l">period ends</th><th style="width:25%"></th></tr>"#);
    for b in budgets {
        let limit: f64 = b.limit_usd.parse().unwrap_or(0.0);
        let spent: f64 = b.spent_usd.parse().unwrap_or(0.0);
        let pct = if limit > 0.0 {
            (100.0 * spent / limit).min(100.0)
        } else {
            0.0
        };
        let _ = write!(
            html,
            r#"<tr><td>{}</td><td class="l">{}</td><td>${}</td><td>${}</td><td>${}</td><td>${}</td><td class="l">{}</td><td><div class="bar"><div style="width:{pct:.1}%;background:{}"></div></div></td></tr>"#,
            esc(&b.budget),
            esc(&b.subject),
            b.limit_usd,
            b.spent_usd,
            b.reserved_usd,
            b.remaining_usd,
            esc(&b.period_end),
            if pct >= 80.0 { "#c0392b" } else { "#4269d0" }
        );
    }
    html.push_str("</table></section>");
}
