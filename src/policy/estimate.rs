//! What a policy's models cost, where it cannot say for sure.

use super::{Model, ModelId, Policy, Pricing};
use crate::money::Price;

impl Policy {
    /// `id`'s price for offline estimates (`Pricing::estimate`); a model
    /// with no known price at the baseline's, as it is charged.
    pub fn estimate(&self, id: ModelId) -> (Price, bool) {
        self.estimate_of(&self.models[id])
    }

    pub fn estimate_of(&self, m: &Model) -> (Price, bool) {
        match m.pricing {
            Pricing::Unknown => (self.baseline.price, true),
            p => p.estimate(),
        }
    }

    /// What a policy loads with but should not: models with no known price.
    pub fn warnings(&self) -> Vec<String> {
        self.models
            .iter()
            .filter(|m| m.pricing == Pricing::Unknown)
            .map(|m| {
                format!(
                    "models.{}: no known price for `{}`; its answers are charged at the \
                     baseline's ({}) and marked `unpriced`: give it `price:`",
                    m.name, m.upstream_model, self.baseline.name
                )
            })
            .collect()
    }
}
