//! A static text embedding (WordLlama `l2_supercat_256`): the prompt is
//! split into Llama-2 BPE tokens, each token's row of a 32,000 × 256 F16
//! table is looked up, and the rows are averaged and L2-normalised. No
//! matrix multiply, so it runs at gateway speed on any CPU.
//!
//! The result equals the reference implementation (`wordllama` in Python:
//! `embed(text, norm=True)`) up to float rounding; `tests/router.rs` holds
//! golden vectors. Tokenising goes word by word through the BPE model's
//! cache (a merge never crosses the `▁` that starts a word, so this gives
//! the same tokens as tokenising the whole text at once), and texts over
//! `HEAD + TAIL` bytes are embedded from their head and tail only, which
//! bounds the cost for any prompt length.

use std::path::Path;

use half::f16;
use half::slice::HalfFloatSliceExt;
use tokenizers::{Model, Tokenizer};

pub const DIM: usize = 256;
/// Bytes of a long text that are embedded: its first `HEAD` and last `TAIL`.
pub const HEAD: usize = 3072;
pub const TAIL: usize = 1024;
const TENSOR: &str = "embedding.weight";
/// Texts containing these go through the full tokenizer, which matches
/// them as special tokens.
const SPECIAL: [&str; 3] = ["<s>", "</s>", "<unk>"];

pub struct Embedder {
    tokenizer: Tokenizer,
    table: Vec<f16>,
    rows: usize,
}

/// What embedding a text gives.
pub struct Embedding {
    /// L2-normalised mean of the token rows (all zero for an empty text).
    pub vector: [f32; DIM],
    /// Tokens of the whole text, extrapolated from the embedded part when
    /// the text was cut to its head and tail.
    pub tokens: u32,
}

impl Embedder {
    /// Loads `tokenizer.json` and the safetensors table; every error names
    /// the file and what is wrong with it.
    pub fn load(tokenizer: &Path, table: &Path) -> Result<Embedder, String> {
        let tok = Tokenizer::from_file(tokenizer)
            .map_err(|e| format!("{}: not a tokenizer.json: {e}", tokenizer.display()))?;
        let bytes =
            std::fs::read(table).map_err(|e| format!("cannot read {}: {e}", table.display()))?;
        let st = safetensors::SafeTensors::deserialize(&bytes)
            .map_err(|e| format!("{}: not a safetensors file: {e}", table.display()))?;
        let t = st
            .tensor(TENSOR)
            .map_err(|e| format!("{}: no tensor `{TENSOR}`: {e}", table.display()))?;
        let shape = t.shape();
        if t.dtype() != safetensors::Dtype::F16 || shape.len() != 2 || shape[1] != DIM {
            return Err(format!(
                "{}: `{TENSOR}` is {:?} {:?}, expected F16 [rows, {DIM}]",
                table.display(),
                t.dtype(),
                shape
            ));
        }
        let table_rows = shape[0];
        let vocab = tok.get_vocab_size(true);
        if vocab > table_rows {
            return Err(format!(
                "{}: {table_rows} rows, but the tokenizer has {vocab} tokens",
                table.display()
            ));
        }
        let table_data: Vec<f16> = t
            .data()
            .chunks_exact(2)
            .map(|b| f16::from_le_bytes([b[0], b[1]]))
            .collect();
        Ok(Embedder {
            tokenizer: tok,
            table: table_data,
            rows: table_rows,
        })
    }

    /// Token ids of `text` as the reference tokenizer gives them (no
    /// special tokens added).
    pub fn token_ids(&self, text: &str) -> Vec<u32> {
        if text.is_empty() {
            return Vec::new();
        }
        if SPECIAL.iter().any(|s| text.contains(s)) {
            return self
                .tokenizer
                .encode(text, false)
                .map(|e| e.get_ids().to_vec())
                .unwrap_or_default();
        }
        // The tokenizer's normaliser: prepend `▁`, replace spaces with `▁`.
        let mut norm = String::with_capacity(text.len() + 3 * text.len() / 8 + 3);
        norm.push('▁');
        for ch in text.chars() {
            norm.push(if ch == ' ' { '▁' } else { ch });
        }
        let model = self.tokenizer.get_model();
        let mut ids = Vec::with_capacity(text.len() / 3 + 1);
        for word in words(&norm) {
            if let Ok(tokens) = model.tokenize(word) {
                ids.extend(tokens.iter().map(|t| t.id));
            }
        }
        ids
    }

    pub fn embed(&self, text: &str) -> Embedding {
        let (part, scale) = bounded(text);
        let mut sum = [0f32; DIM];
        let mut row = [0f32; DIM];
        let mut n = 0u32;
        let mut add = |id: u32| {
            let id = (id as usize).min(self.rows - 1);
            self.table[id * DIM..(id + 1) * DIM].convert_to_f32_slice(&mut row);
            for (s, r) in sum.iter_mut().zip(&row) {
                *s += r;
            }
            n += 1;
        };
        match part {
            Part::Whole(t) => self.token_ids(t).into_iter().for_each(&mut add),
            Part::HeadTail(h, t) => {
                self.token_ids(h).into_iter().for_each(&mut add);
                self.token_ids(t).into_iter().for_each(&mut add);
            }
        }
        let norm = sum.iter().map(|v| v * v).sum::<f32>().sqrt();
        if norm > 0.0 {
            sum.iter_mut().for_each(|v| *v /= norm);
        }
        Embedding {
            vector: sum,
            tokens: (f64::from(n) * scale).round() as u32,
        }
    }
}

/// The words of a normalised text: each starts at a `▁` that follows a
/// character other than `▁` (runs of `▁` stay with the word after them).
fn words(norm: &str) -> impl Iterator<Item = &str> {
    let mut start = 0;
    let mut prev_blank = false;
    let mut cuts = norm.char_indices().filter_map(move |(i, c)| {
        let blank = c == '▁';
        let cut = blank && !prev_blank && i > 0;
        prev_blank = blank;
        cut.then_some(i)
    });
    std::iter::from_fn(move || {
        if start >= norm.len() {
            return None;
        }
        let end = cuts.next().unwrap_or(norm.len());
        let w = &norm[start..end];
        start = end;
        Some(w)
    })
}

enum Part<'a> {
    Whole(&'a str),
    HeadTail(&'a str, &'a str),
}

/// The part of `text` that is embedded, and by how much its token count is
/// scaled up to estimate the whole text's.
fn bounded(text: &str) -> (Part<'_>, f64) {
    if text.len() <= HEAD + TAIL {
        return (Part::Whole(text), 1.0);
    }
    let mut h = HEAD;
    while !text.is_char_boundary(h) {
        h -= 1;
    }
    let mut t = text.len() - TAIL;
    while !text.is_char_boundary(t) {
        t += 1;
    }
    let used = h + (text.len() - t);
    (
        Part::HeadTail(&text[..h], &text[t..]),
        text.len() as f64 / used as f64,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_before_each_word() {
        let w: Vec<&str> = words("▁a▁▁b▁c\nd").collect();
        assert_eq!(w, ["▁a", "▁▁b", "▁c\nd"]);
        assert_eq!(words("▁").collect::<Vec<_>>(), ["▁"]);
    }

    #[test]
    fn long_texts_keep_head_and_tail_on_char_boundaries() {
        let text = "é".repeat(5000);
        let (part, scale) = bounded(&text);
        let Part::HeadTail(h, t) = part else {
            panic!("not cut")
        };
        assert!(h.len() <= HEAD && t.len() <= TAIL);
        assert!(scale > 2.0);
        assert!(matches!(bounded("short").0, Part::Whole("short")));
    }
}
