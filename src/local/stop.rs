//! Stop sequences on streamed text, applied as OpenAI does.

/// Applies `stop` sequences to streamed text the way OpenAI does: the
/// answer ends before the first occurrence, which is never sent. Text that
/// could be the start of a stop sequence is held back until it is known
/// not to be. (mistralrs stops the sequence on the same token, but in
/// streaming mode it sends that token's whole text.)
#[derive(Default)]
pub(super) struct StopFilter {
    stops: Vec<String>,
    pending: String,
    cut: bool,
}

impl StopFilter {
    pub(super) fn new(stops: Vec<String>) -> StopFilter {
        StopFilter {
            stops,
            ..StopFilter::default()
        }
    }

    /// Takes the next piece; returns the text that may be sent now.
    pub(super) fn push(&mut self, piece: &str) -> String {
        if self.cut {
            return String::new();
        }
        self.pending.push_str(piece);
        if self.stops.is_empty() {
            return std::mem::take(&mut self.pending);
        }
        if let Some(pos) = self
            .stops
            .iter()
            .filter_map(|s| self.pending.find(s.as_str()))
            .min()
        {
            self.cut = true;
            let out = self.pending[..pos].to_string();
            self.pending.clear();
            return out;
        }
        // Hold back the longest tail that is a proper prefix of a stop sequence.
        let hold = self
            .stops
            .iter()
            .flat_map(|s| s.char_indices().skip(1).map(|(i, _)| &s[..i]))
            .filter(|prefix| self.pending.ends_with(prefix))
            .map(str::len)
            .max()
            .unwrap_or(0);
        let keep = self.pending.split_off(self.pending.len() - hold);
        std::mem::replace(&mut self.pending, keep)
    }

    /// The held-back text at the end of the answer.
    pub(super) fn flush(&mut self) -> String {
        std::mem::take(&mut self.pending)
    }
}

#[cfg(test)]
mod tests {
    use super::StopFilter;

    fn run(stops: &[&str], pieces: &[&str]) -> (String, bool) {
        let mut f = StopFilter::new(stops.iter().map(|s| s.to_string()).collect());
        let mut out: String = pieces.iter().map(|p| f.push(p)).collect();
        out.push_str(&f.flush());
        (out, f.cut)
    }

    #[test]
    fn cuts_before_the_first_stop_sequence_even_inside_a_token() {
        assert_eq!(
            run(&["at"], &["The", " people", " seated", " at"]),
            ("The people se".into(), true)
        );
        assert_eq!(run(&["END"], &["a", "bE", "N", "Dc"]), ("ab".into(), true));
        assert_eq!(
            run(&["\n\n", "END"], &["x\n", "y", "EN"]),
            ("x\nyEN".into(), false)
        );
        assert_eq!(run(&[], &["a", "b"]), ("ab".into(), false));
        assert_eq!(run(&["é!"], &["café", "?"]), ("café?".into(), false));
    }
}
