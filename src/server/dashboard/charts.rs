//! The dashboard's charts, drawn as inline SVG: spend per day by model,
//! savings per day against the baseline, and the route mix by task.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::{esc, money};
use crate::money::Nanos;
use crate::report::{savings_pct, usd_f64, Report};

const W: f64 = 620.0;
const H: f64 = 220.0;
const PAD_L: f64 = 56.0;
const PAD_B: f64 = 28.0;

/// The y axis: 4 gridlines from 0 to a round maximum.
fn axis(svg: &mut String, max: f64, fmt: &dyn Fn(f64) -> String) -> f64 {
    let raw = if max > 0.0 { max } else { 1.0 };
    let mag = 10f64.powf(raw.log10().floor());
    let top = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|v| *v >= raw)
        .unwrap_or(raw);
    for i in 0..=4 {
        let v = top * f64::from(i) / 4.0;
        let y = H - PAD_B - (H - PAD_B - 8.0) * f64::from(i) / 4.0;
        let _ = write!(
            svg,
            r##"<line x1="{PAD_L}" x2="{W}" y1="{y:.1}" y2="{y:.1}" stroke="#eceef2"/><text x="{}" y="{:.1}" text-anchor="end" font-size="11" fill="#5b6475">{}</text>"##,
            PAD_L - 6.0,
            y + 4.0,
            fmt(v)
        );
    }
    top
}

fn usd_tick(v: f64) -> String {
    if v >= 10.0 {
        format!("${v:.0}")
    } else if v >= 0.1 {
        format!("${v:.2}")
    } else {
        format!("${v:.4}")
    }
}

pub(super) fn spend_per_day(html: &mut String, r: &Report, color: &BTreeMap<&str, &str>) {
    html.push_str(r#"<section class="card"><h2>Spend per day, by model</h2>"#);
    let mut days: BTreeMap<&str, Vec<(&str, f64)>> = BTreeMap::new();
    for g in &r.groups {
        days.entry(&g.keys[0])
            .or_default()
            .push((&g.keys[1], usd_f64(g.cost)));
    }
    if days.is_empty() {
        html.push_str(r#"<div class="empty">No requests in this period yet.</div></section>"#);
        return;
    }
    let max = days
        .values()
        .map(|v| v.iter().map(|x| x.1).sum::<f64>())
        .fold(0.0, f64::max);
    let mut svg = format!(
        r#"<svg viewBox="0 0 {W} {H}" width="100%" role="img" aria-label="spend per day">"#
    );
    let top = axis(&mut svg, max, &usd_tick);
    let n = days.len() as f64;
    let slot = (W - PAD_L) / n;
    let bw = (slot * 0.7).min(48.0);
    for (i, (day, parts)) in days.iter().enumerate() {
        let x = PAD_L + slot * i as f64 + (slot - bw) / 2.0;
        let mut y = H - PAD_B;
        for (model, v) in parts {
            let h = (H - PAD_B - 8.0) * v / top;
            y -= h;
            let _ = write!(
                svg,
                r#"<rect x="{x:.1}" y="{y:.1}" width="{bw:.1}" height="{h:.1}" fill="{}"><title>{} {}: {}</title></rect>"#,
                color.get(model).copied().unwrap_or("#999"),
                esc(day),
                esc(model),
                usd_tick(*v)
            );
        }
        if days.len() <= 16 || i % (days.len() / 8).max(1) == 0 {
            let _ = write!(
                svg,
                r##"<text x="{:.1}" y="{}" text-anchor="middle" font-size="11" fill="#5b6475">{}</text>"##,
                x + bw / 2.0,
                H - 10.0,
                esc(day.get(5..).unwrap_or(day))
            );
        }
    }
    svg.push_str("</svg>");
    html.push_str(&svg);
    legend(html, color);
    html.push_str("</section>");
}

fn legend(html: &mut String, color: &BTreeMap<&str, &str>) {
    html.push_str(r#"<div class="legend">"#);
    for (m, c) in color {
        let _ = write!(
            html,
            r#"<span><i style="background:{c}"></i>{}</span>"#,
            esc(m)
        );
    }
    html.push_str("</div>");
}

pub(super) fn savings_per_day(html: &mut String, r: &Report, baseline: &str) {
    let _ = write!(
        html,
        r#"<section class="card"><h2>Actual spend vs. everything on {}</h2>"#,
        esc(baseline)
    );
    if r.groups.is_empty() {
        html.push_str(r#"<div class="empty">No requests in this period yet.</div></section>"#);
        return;
    }
    let max = r
        .groups
        .iter()
        .map(|g| usd_f64(g.baseline_cost).max(usd_f64(g.cost)))
        .fold(0.0, f64::max);
    let mut svg = format!(
        r#"<svg viewBox="0 0 {W} {H}" width="100%" role="img" aria-label="savings per day">"#
    );
    let top = axis(&mut svg, max, &usd_tick);
    let slot = (W - PAD_L) / r.groups.len() as f64;
    let bw = (slot * 0.35).min(24.0);
    for (i, g) in r.groups.iter().enumerate() {
        let x = PAD_L + slot * i as f64 + slot / 2.0 - bw;
        for (j, (v, fill, what)) in [
            (usd_f64(g.baseline_cost), "#c9cfdb", "baseline"),
            (usd_f64(g.cost), "#3ca951", "actual"),
        ]
        .into_iter()
        .enumerate()
        {
            let h = (H - PAD_B - 8.0) * v / top;
            let _ = write!(
                svg,
                r#"<rect x="{:.1}" y="{:.1}" width="{bw:.1}" height="{h:.1}" fill="{fill}"><title>{} {what}: {}</title></rect>"#,
                x + bw * j as f64,
                H - PAD_B - h,
                esc(&g.keys[0]),
                usd_tick(v)
            );
        }
        if r.groups.len() <= 16 || i % (r.groups.len() / 8).max(1) == 0 {
            let _ = write!(
                svg,
                r##"<text x="{:.1}" y="{}" text-anchor="middle" font-size="11" fill="#5b6475">{}</text>"##,
                x + bw,
                H - 10.0,
                esc(g.keys[0].get(5..).unwrap_or(&g.keys[0]))
            );
        }
    }
    svg.push_str("</svg>");
    html.push_str(&svg);
    let _ = write!(
        html,
        r#"<div class="legend"><span><i style="background:#c9cfdb"></i>on {} alone</span><span><i style="background:#3ca951"></i>actual</span><span>saved {} ({}%)</span></div></section>"#,
        esc(baseline),
        money(Nanos(
            r.total.baseline_cost.0.saturating_sub(r.total.cost.0)
        )),
        savings_pct(&r.total)
    );
}

pub(super) fn route_mix(html: &mut String, r: &Report, color: &BTreeMap<&str, &str>) {
    html.push_str(r#"<section class="card"><h2>Where each task went (requests)</h2>"#);
    let mut tasks: BTreeMap<&str, Vec<(&str, u64)>> = BTreeMap::new();
    for g in &r.groups {
        let task = if g.keys[0].is_empty() {
            "(unparsed)"
        } else {
            &g.keys[0]
        };
        tasks
            .entry(task)
            .or_default()
            .push((&g.keys[1], g.requests));
    }
    if tasks.is_empty() {
        html.push_str(r#"<div class="empty">No requests in this period yet.</div></section>"#);
        return;
    }
    let rows = tasks.len() as f64;
    let h = rows * 26.0 + 10.0;
    let mut svg = format!(
        r#"<svg viewBox="0 0 {W} {h}" width="100%" role="img" aria-label="route mix by task">"#
    );
    let label_w = 120.0;
    for (i, (task, parts)) in tasks.iter().enumerate() {
        let total: u64 = parts.iter().map(|p| p.1).sum();
        let y = 6.0 + 26.0 * i as f64;
        let _ = write!(
            svg,
            r##"<text x="0" y="{:.1}" font-size="12" fill="#1d2330">{}</text>"##,
            y + 13.0,
            esc(task)
        );
        let mut x = label_w;
        for (model, n) in parts {
            let w = (W - label_w - 40.0) * *n as f64 / total.max(1) as f64;
            let _ = write!(
                svg,
                r#"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="18" fill="{}"><title>{}: {} → {}</title></rect>"#,
                color.get(model).copied().unwrap_or("#999"),
                esc(task),
                n,
                esc(model)
            );
            x += w;
        }
        let _ = write!(
            svg,
            r##"<text x="{:.1}" y="{:.1}" font-size="11" fill="#5b6475">{total}</text>"##,
            W - 34.0,
            y + 13.0
        );
    }
    svg.push_str("</svg>");
    html.push_str(&svg);
    legend(html, color);
    html.push_str("</section>");
}
