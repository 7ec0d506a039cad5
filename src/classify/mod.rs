//! Request facts the router can match on: task and complexity.
//!
//! The names are part of the policy format (`when: { task: [code] }`), so
//! they are fixed here and parsed strictly.

use std::fmt;
use std::str::FromStr;

macro_rules! named_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(format!(
                        "unknown {} `{s}` (expected one of: {})",
                        stringify!($name).to_lowercase(),
                        [$($text),+].join(", ")
                    )),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

named_enum!(
    /// What the request asks the model to do.
    Task {
        Code => "code",
        Math => "math",
        Reasoning => "reasoning",
        Summarization => "summarization",
        Extraction => "extraction",
        Classification => "classification",
        Translation => "translation",
        CreativeWriting => "creative_writing",
        Brainstorming => "brainstorming",
        OpenQa => "open_qa",
        ClosedQa => "closed_qa",
        Roleplay => "roleplay",
        Chat => "chat",
    }
);

named_enum!(
    /// How hard the request is.
    Complexity {
        Low => "low",
        Medium => "medium",
        High => "high",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for t in Task::ALL {
            assert_eq!(t.as_str().parse::<Task>(), Ok(*t));
        }
        assert!("poetry"
            .parse::<Task>()
            .unwrap_err()
            .contains("creative_writing"));
        assert_eq!("high".parse::<Complexity>(), Ok(Complexity::High));
    }
}
