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

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

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
    /// Tells this embedder's entries in the per-thread word cache apart.
    id: usize,
}

/// Words (as normalised, `▁`-prefixed) and their token ids, per thread:
/// no lock on the request path, and no allocation for a word seen before.
/// Bounded: past `MAX_WORDS` entries, new words are tokenised uncached.
struct WordCache {
    owner: usize,
    words: HashMap<Box<str>, Box<[u32]>, BuildHasherDefault<Fnv>>,
}

/// FNV-1a: words are short, and SipHash's flood resistance buys nothing
/// for a cache that stops growing at `MAX_WORDS`.
#[derive(Default)]
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for b in bytes {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

const MAX_WORDS: usize = 8_192;
/// Longer words (runs of text without spaces) are not cached.
const MAX_WORD_BYTES: usize = 48;
static NEXT_ID: AtomicUsize = AtomicUsize::new(1);

thread_local! {
    static CACHE: RefCell<WordCache> = RefCell::new(WordCache {
        owner: 0,
        words: HashMap::default(),
    });
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
        let (table_data, table_rows) = read_table(table)?;
        let vocab = tok.get_vocab_size(true);
        if vocab > table_rows {
            return Err(format!(
                "{}: {table_rows} rows, but the tokenizer has {vocab} tokens",
                table.display()
            ));
        }
        Ok(Embedder {
            tokenizer: tok,
            table: table_data,
            rows: table_rows,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
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
        let mut ids = Vec::with_capacity(text.len() / 3 + 1);
        CACHE.with_borrow_mut(|cache| {
            if cache.owner != self.id {
                cache.words.clear();
                cache.owner = self.id;
            }
            for word in words(&norm) {
                if let Some(hit) = cache.words.get(word) {
                    ids.extend_from_slice(hit);
                    continue;
                }
                let start = ids.len();
                self.bpe(word, &mut ids);
                if word.len() <= MAX_WORD_BYTES && cache.words.len() < MAX_WORDS {
                    cache.words.insert(word.into(), ids[start..].into());
                }
            }
        });
        ids
    }

    fn bpe(&self, word: &str, ids: &mut Vec<u32>) {
        if let Ok(tokens) = self.tokenizer.get_model().tokenize(word) {
            ids.extend(tokens.iter().map(|t| t.id));
        }
    }

    pub fn embed(&self, text: &str) -> Embedding {
        let (part, scale) = bounded(text);
        let mut ids = match part {
            Part::Whole(t) => self.token_ids(t),
            Part::HeadTail(h, t) => {
                let mut ids = self.token_ids(h);
                ids.extend(self.token_ids(t));
                ids
            }
        };
        let n = ids.len();
        // Each distinct token's row once, times its count: prompts repeat
        // their common tokens, and the mean does not depend on the order.
        ids.sort_unstable();
        let mut sum = [0f32; DIM];
        let mut row = [0f32; DIM];
        for run in ids.chunk_by(|a, b| a == b) {
            let id = (run[0] as usize).min(self.rows - 1);
            self.table[id * DIM..(id + 1) * DIM].convert_to_f32_slice(&mut row);
            let k = run.len() as f32;
            for (s, r) in sum.iter_mut().zip(&row) {
                *s += k * r;
            }
        }
        let norm = sum.iter().map(|v| v * v).sum::<f32>().sqrt();
        if norm > 0.0 {
            sum.iter_mut().for_each(|v| *v /= norm);
        }
        Embedding {
            vector: sum,
            tokens: (n as f64 * scale).round() as u32,
        }
    }
}

/// Reads the safetensors file into a buffer of F16 values, checks it, and
/// moves the table to the buffer's front: one allocation of the file's
/// size, which becomes the table.
fn read_table(path: &Path) -> Result<(Vec<f16>, usize), String> {
    use std::io::Read;
    let name = path.display();
    let mut file = std::fs::File::open(path).map_err(|e| format!("cannot read {name}: {e}"))?;
    let len = file
        .metadata()
        .map_err(|e| format!("cannot read {name}: {e}"))?
        .len() as usize;
    let mut buf = vec![f16::ZERO; len.div_ceil(2)];
    let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut buf);
    file.read_exact(&mut bytes[..len])
        .map_err(|e| format!("cannot read {name}: {e}"))?;
    let bytes = &bytes[..len];
    let st = safetensors::SafeTensors::deserialize(bytes)
        .map_err(|e| format!("{name}: not a safetensors file: {e}"))?;
    let t = st
        .tensor(TENSOR)
        .map_err(|e| format!("{name}: no tensor `{TENSOR}`: {e}"))?;
    let shape = t.shape();
    if t.dtype() != safetensors::Dtype::F16 || shape.len() != 2 || shape[1] != DIM || shape[0] == 0
    {
        return Err(format!(
            "{name}: `{TENSOR}` is {:?} {shape:?}, expected F16 [rows, {DIM}]",
            t.dtype()
        ));
    }
    let rows = shape[0];
    // Where the tensor's bytes start in the file.
    let start = t.data().as_ptr() as usize - bytes.as_ptr() as usize;
    drop(st);
    let n = rows * DIM;
    if start.is_multiple_of(2) && cfg!(target_endian = "little") {
        buf.copy_within(start / 2..start / 2 + n, 0);
    } else {
        // Unaligned or big-endian: decode each value.
        let all: &[u8] = bytemuck::cast_slice(&buf);
        let decoded: Vec<f16> = all[start..start + 2 * n]
            .chunks_exact(2)
            .map(|b| f16::from_le_bytes([b[0], b[1]]))
            .collect();
        buf[..n].copy_from_slice(&decoded);
    }
    buf.truncate(n);
    buf.shrink_to_fit();
    Ok((buf, rows))
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

/// The part of `text` the router reads: all of it, or its head and tail
/// joined by a newline when it is longer than `HEAD + TAIL` bytes.
pub fn bounded_text(text: &str) -> std::borrow::Cow<'_, str> {
    match bounded(text).0 {
        Part::Whole(t) => t.into(),
        Part::HeadTail(h, t) => format!("{h}\n{t}").into(),
    }
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
