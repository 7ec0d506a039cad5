//! Kinds of prompt whose difficulty follows their own signal: within a
//! maths problem or a multiple-choice question the general strong head's
//! ranking (learned mostly on chat, where a long prompt is often an easy
//! extraction) runs the wrong way, so the heads may carry a strong head for
//! each kind (`Heads::domains`), fitted by `scripts/train-router` on that
//! kind's own training sources.

use super::super::Task;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Domain {
    /// A question with lettered options (`A.` / `B)` / `(C)` lines).
    Choices,
    /// The router's task is maths, and the prompt states quantities.
    Math,
    /// The router's task is code.
    Code,
}

impl Domain {
    pub const ALL: [Domain; 3] = [Domain::Choices, Domain::Math, Domain::Code];

    pub fn as_str(self) -> &'static str {
        match self {
            Domain::Choices => "choices",
            Domain::Math => "math",
            Domain::Code => "code",
        }
    }

    pub fn parse(name: &str) -> Option<Domain> {
        Domain::ALL.into_iter().find(|d| d.as_str() == name)
    }

    /// The domain of a prompt, given whether it offers lettered options,
    /// how many distinct numbers it states and the task the router
    /// answers: options first, so a multiple-choice maths question is a
    /// multiple-choice question; a maths problem states at least two
    /// quantities (a riddle or a request to teach maths is scored by the
    /// general head).
    pub fn of(choices: bool, quantities: usize, task: Task) -> Option<Domain> {
        if choices {
            Some(Domain::Choices)
        } else if task == Task::Math && quantities >= MIN_QUANTITIES {
            Some(Domain::Math)
        } else if task == Task::Code {
            Some(Domain::Code)
        } else {
            None
        }
    }
}

const MIN_QUANTITIES: usize = 2;

/// Distinct numbers (runs of digits, with a decimal part) in `text`,
/// counted up to `MIN_QUANTITIES`.
pub fn quantities(text: &str) -> usize {
    let mut seen: [&str; MIN_QUANTITIES] = [""; MIN_QUANTITIES];
    let mut n = 0;
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() && n < MIN_QUANTITIES {
        if !bytes[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if i + 1 < bytes.len() && bytes[i] == b'.' && bytes[i + 1].is_ascii_digit() {
            i += 1;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
        }
        let number = &text[start..i];
        if !seen[..n].contains(&number) {
            seen[n] = number;
            n += 1;
        }
    }
    n
}

/// Whether at least the options A and B start lines: a letter, optionally
/// in parentheses, then `.`, `)`, `:` or `：`, then the option's text.
pub fn has_choices(text: &str) -> bool {
    let (mut a, mut b) = (false, false);
    for line in text.lines() {
        let line = line.trim_start();
        let line = line.strip_prefix('(').unwrap_or(line);
        let mut chars = line.chars();
        let (Some(letter), Some(mark)) = (chars.next(), chars.next()) else {
            continue;
        };
        if !matches!(mark, '.' | ')' | ':' | '：') || chars.as_str().trim().is_empty() {
            continue;
        }
        match letter {
            'A' | 'a' => a = true,
            'B' | 'b' => b = true,
            _ => {}
        }
        if a && b {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lettered_options_make_a_multiple_choice_question() {
        let mmlu = "Which gas do plants take in?\nA. oxygen\nB. carbon dioxide\nC. argon\nD. neon\nAnswer:";
        assert!(has_choices(mmlu));
        let arc = "Which is a metal?\n(A) wood (B) glass\n(a) iron\n(b) salt";
        assert!(has_choices(arc));
        let cmmlu = "运行中变压器温度最高的部分是\nA. 绕组\nB. 变压器油\n答案：";
        assert!(has_choices(cmmlu));
        assert_eq!(Domain::of(true, 0, Task::Math), Some(Domain::Choices));
    }

    #[test]
    fn quantities_are_distinct_numbers() {
        assert_eq!(quantities("She eats 3 and bakes 4 of 16 eggs"), 2);
        assert_eq!(quantities("3 and 3 and 3"), 1);
        assert_eq!(quantities("2.5 kg, 2 kg"), 2);
        assert_eq!(quantities("David has three sisters."), 0);
        assert_eq!(quantities("version 1."), 1);
    }

    #[test]
    fn a_single_letter_or_an_empty_option_is_not_a_choice() {
        assert!(!has_choices("A. first point\nC. third"));
        assert!(!has_choices("A.\nB.\n"));
        assert!(!has_choices("Plan A: go\nPlan B: stay"));
        assert_eq!(Domain::of(false, 2, Task::Math), Some(Domain::Math));
        assert_eq!(Domain::of(false, 1, Task::Math), None);
        assert_eq!(Domain::of(false, 0, Task::Code), Some(Domain::Code));
        assert_eq!(Domain::of(false, 2, Task::Chat), None);
        for d in Domain::ALL {
            assert_eq!(Domain::parse(d.as_str()), Some(d));
        }
    }
}
