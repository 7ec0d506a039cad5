//! The shape of `src/`, kept: no file over 400 lines, and no two modules
//! that depend on each other (directly or through others). A module's use
//! of its own parent or children does not count: that is the tree itself.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `src/a/b.rs` and `src/a/b/mod.rs` → `["a", "b"]`; lib.rs → `[]`.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|s| s.to_string_lossy().into_owned())
        .collect();
    if parts
        .last()
        .is_some_and(|p| p == "mod" || p == "lib" || p == "main")
    {
        parts.pop();
    }
    parts
}

/// Every `crate::…` and `super::…` path in `text`, resolved from `module`.
fn paths(text: &str, module: &[String]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(i) = rest.find(['c', 's']) {
            let tail = &rest[i..];
            let boundary =
                i == 0 || !rest[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_');
            let word: String = tail
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            rest = &tail[word.len().max(1)..];
            if !boundary || !(word.starts_with("crate::") || word.starts_with("super::")) {
                continue;
            }
            let mut segs: Vec<&str> = word.split("::").filter(|s| !s.is_empty()).collect();
            let mut base: Vec<String> = module.to_vec();
            if segs[0] == "crate" {
                base.clear();
                segs.remove(0);
            } else {
                while segs.first() == Some(&"super") {
                    base.pop();
                    segs.remove(0);
                }
            }
            base.extend(segs.iter().map(|s| s.to_string()));
            out.push(base);
        }
    }
    out
}

#[test]
fn no_file_in_src_is_over_400_lines() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut lines: Vec<(usize, String)> = files
        .iter()
        .map(|f| {
            (
                std::fs::read_to_string(f).unwrap().lines().count(),
                f.display().to_string(),
            )
        })
        .collect();
    lines.sort();
    let over: Vec<_> = lines.iter().filter(|(n, _)| *n > 400).collect();
    assert!(over.is_empty(), "files over 400 lines: {over:?}");
    let median = lines[lines.len() / 2].0;
    assert!(median <= 150, "median file length {median} lines");
}

#[test]
fn modules_do_not_import_each_other_in_a_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let modules: BTreeSet<Vec<String>> = files.iter().map(|f| module_of(&src, f)).collect();
    let mut graph: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for f in &files {
        let m = module_of(&src, f);
        if m.last().is_some_and(|s| s == "tests") {
            continue;
        }
        let text = std::fs::read_to_string(f).unwrap();
        for p in paths(&text, &m) {
            // The longest prefix that is a module of the crate.
            let Some(target) = (1..=p.len())
                .rev()
                .map(|k| p[..k].to_vec())
                .find(|c| modules.contains(c))
            else {
                continue;
            };
            let related = target.starts_with(&m) || m.starts_with(&target);
            if !related && target.last().is_none_or(|s| s != "tests") {
                graph.entry(m.clone()).or_default().insert(target);
            }
        }
    }
    // A module that can reach itself is in a cycle.
    for start in graph.keys() {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<&Vec<String>> = graph[start].iter().collect();
        while let Some(m) = stack.pop() {
            assert!(
                m != start,
                "{} is part of an import cycle",
                start.join("::")
            );
            if seen.insert(m.clone()) {
                stack.extend(graph.get(m).into_iter().flatten());
            }
        }
    }
    assert!(
        graph.len() > 30,
        "the scan found too few modules: {}",
        graph.len()
    );
}
