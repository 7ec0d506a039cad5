//! The learned router's heads: the linear weights over
//! [`Router::features`](super::Router::features) that turn
//! a prompt into its strong_score, task and complexity.
//!
//! Two places write them: `scripts/train-router` (the shipped
//! `router.json`, fitted on public outcomes) and `tollgate route fit` (a
//! deployment's own outcomes, see `fit`). Both write this one format, and
//! every reader checks it against the features this build computes before
//! it is used, so a heads file from another build is refused, never
//! misread.

use serde::{Deserialize, Serialize};

use super::super::Task;
use super::{Domain, FEATURES};

/// The shipped heads (written by `scripts/train-router`).
const SHIPPED: &str = include_str!("../router.json");

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Heads {
    pub features: usize,
    pub strong: Linear,
    /// Platt scaling of the strong head's output: sigmoid(a·x + c).
    pub platt: [f32; 2],
    /// Plain difficulty (the share of models that lose), for complexity.
    pub difficulty: Linear,
    pub task: TaskHead,
    pub complexity: Cuts,
    /// Prompts with more CJK characters than this share keep the keyword
    /// classifier's task; `null` never.
    pub rules_task_above_cjk: Option<f32>,
    /// Tasks the head had too few examples of: when the keyword classifier
    /// says one of these, its answer stands.
    pub keep_rules_tasks: Vec<String>,
    /// Strong and difficulty heads for prompts of one kind (`Domain`),
    /// used instead of the general ones there; none in a `route fit` file,
    /// whose head is fitted on the deployment's own mix.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub domains: Vec<DomainHeads>,
    /// What `route fit` measured when it wrote these heads; absent in the
    /// shipped ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fitted: Option<serde_json::Value>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Linear {
    pub w: Vec<f32>,
    pub b: f32,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DomainHeads {
    /// `choices`, `math` or `code`.
    pub domain: String,
    pub strong: Linear,
    pub difficulty: Linear,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TaskHead {
    pub labels: Vec<String>,
    pub w: Vec<Vec<f32>>,
    pub b: Vec<f32>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Cuts {
    pub medium: f64,
    pub high: f64,
}

impl Heads {
    /// The heads built into the binary (a unit test proves they parse).
    pub fn shipped() -> Result<Heads, String> {
        Heads::parse(SHIPPED)
    }

    /// Parses and checks a heads file's text: the feature width, each
    /// head's shape, finite weights and known task labels.
    pub fn parse(text: &str) -> Result<Heads, String> {
        let heads: Heads = serde_json::from_str(text).map_err(|e| format!("router heads: {e}"))?;
        heads.check()?;
        Ok(heads)
    }

    fn check(&self) -> Result<(), String> {
        let width_ok = |w: &[f32]| w.len() == FEATURES;
        if self.features != FEATURES
            || !width_ok(&self.strong.w)
            || !width_ok(&self.difficulty.w)
            || !self.task.w.iter().all(|w| width_ok(w))
            || self.task.w.len() != self.task.labels.len()
            || self.task.b.len() != self.task.labels.len()
            || !self
                .domains
                .iter()
                .all(|d| width_ok(&d.strong.w) && width_ok(&d.difficulty.w))
        {
            return Err(format!(
                "router heads: built for {} features, this build computes {FEATURES}",
                self.features
            ));
        }
        let finite = self
            .strong
            .w
            .iter()
            .chain(&self.difficulty.w)
            .chain(self.task.w.iter().flatten())
            .chain(&self.task.b)
            .chain(&self.platt)
            .chain([&self.strong.b, &self.difficulty.b])
            .chain(self.domains.iter().flat_map(|d| {
                d.strong
                    .w
                    .iter()
                    .chain(&d.difficulty.w)
                    .chain([&d.strong.b, &d.difficulty.b])
            }))
            .all(|x| x.is_finite());
        if !finite || !self.complexity.medium.is_finite() || !self.complexity.high.is_finite() {
            return Err("router heads: a weight is not a finite number".into());
        }
        self.tasks()?;
        for d in &self.domains {
            if Domain::parse(&d.domain).is_none() {
                return Err(format!(
                    "router heads: unknown domain \"{}\" (known: choices, math, code)",
                    d.domain
                ));
            }
        }
        Ok(())
    }

    fn domain(&self, domain: Option<Domain>) -> Option<&DomainHeads> {
        let name = domain?.as_str();
        self.domains.iter().find(|d| d.domain == name)
    }

    /// The task head's labels, in its row order.
    pub fn tasks(&self) -> Result<Vec<Task>, String> {
        self.task
            .labels
            .iter()
            .map(|l| l.parse::<Task>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("router heads: {e}"))
    }

    /// The strong head's raw output on a feature vector: the domain's
    /// head where the heads carry one, else the general head.
    pub fn strong_raw(&self, f: &[f32], domain: Option<Domain>) -> f32 {
        let h = self.domain(domain).map_or(&self.strong, |d| &d.strong);
        dot(&h.w, f) + h.b
    }

    /// The difficulty head's raw output, chosen the same way.
    pub fn difficulty_raw(&self, f: &[f32], domain: Option<Domain>) -> f32 {
        let h = self
            .domain(domain)
            .map_or(&self.difficulty, |d| &d.difficulty);
        dot(&h.w, f) + h.b
    }

    /// The calibrated strong_score for a raw output.
    pub fn strong_score(&self, raw: f32) -> f64 {
        let [a, c] = self.platt;
        f64::from(1.0 / (1.0 + (-(a * raw + c)).exp()))
    }

    /// Reads a heads file from disk (what `route fit` wrote).
    pub fn read(path: &std::path::Path) -> Result<Heads, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read router heads {}: {e}", path.display()))?;
        Heads::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }
}

pub fn dot(w: &[f32], f: &[f32]) -> f32 {
    w.iter().zip(f).map(|(a, b)| a * b).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_heads_match_the_features() {
        let h = Heads::shipped().unwrap();
        assert_eq!(h.features, FEATURES);
        assert_eq!(h.strong.w.len(), FEATURES);
        assert_eq!(h.task.labels.len(), 13);
        assert!(h.complexity.medium < h.complexity.high);
        assert!(h.fitted.is_none());
    }

    #[test]
    fn a_file_for_another_width_or_with_nan_is_refused() {
        let mut h = Heads::shipped().unwrap();
        h.strong.w.pop();
        let e = Heads::parse(&serde_json::to_string(&h).unwrap()).unwrap_err();
        assert!(e.contains("built for 275 features"), "{e}");
        let mut h = Heads::shipped().unwrap();
        h.platt[0] = f32::NAN;
        // serde_json writes NaN as null, which is not a number.
        assert!(Heads::parse(&serde_json::to_string(&h).unwrap()).is_err());
        let mut h = Heads::shipped().unwrap();
        h.task.labels[0] = "poetry".into();
        let e = Heads::parse(&serde_json::to_string(&h).unwrap()).unwrap_err();
        assert!(e.contains("poetry"), "{e}");
        let mut h = Heads::shipped().unwrap();
        h.domains.push(DomainHeads {
            domain: "poetry".into(),
            strong: h.strong.clone(),
            difficulty: h.difficulty.clone(),
        });
        let e = Heads::parse(&serde_json::to_string(&h).unwrap()).unwrap_err();
        assert!(e.contains("unknown domain \"poetry\""), "{e}");
    }

    #[test]
    fn a_domain_head_answers_only_for_its_domain() {
        let mut h = Heads::shipped().unwrap();
        h.domains.clear();
        let f = vec![0.01; FEATURES];
        let general = h.strong_raw(&f, Some(Domain::Math));
        let mut math = h.strong.clone();
        math.b += 1.0;
        h.domains.push(DomainHeads {
            domain: "math".into(),
            strong: math,
            difficulty: h.difficulty.clone(),
        });
        assert!((h.strong_raw(&f, Some(Domain::Math)) - general - 1.0).abs() < 1e-5);
        assert_eq!(h.strong_raw(&f, Some(Domain::Choices)), general);
        assert_eq!(h.strong_raw(&f, None), general);
    }

    #[test]
    fn heads_round_trip_through_their_file_format() {
        let h = Heads::shipped().unwrap();
        let back = Heads::parse(&serde_json::to_string(&h).unwrap()).unwrap();
        assert_eq!(back.strong.w, h.strong.w);
        assert_eq!(back.platt, h.platt);
    }
}
