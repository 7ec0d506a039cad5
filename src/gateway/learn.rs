//! Settlements' lessons kept across restarts and replicas: each model's
//! learned billing ratios (`state::bounds`) go to the ledger's database
//! and come back from it (`ledger::learnt`), keyed by provider and
//! upstream model name.

use super::Gateway;
use crate::ledger::learnt::Taught;
use crate::policy::ModelId;
use crate::state::bounds::Shape;

impl Gateway {
    /// Keeps what `id` has learned of `shape` in the ledger.
    pub fn teach(&self, id: ModelId, shape: Shape) {
        let Some(l) = &self.ledger else { return };
        let m = &self.policy.models[id];
        let learnt = self.bounds.learned(id)[usize::from(shape == Shape::Rich)];
        l.teach(Taught {
            provider: self.policy.providers[m.provider].name.clone(),
            model: m.upstream_model.clone(),
            learnt,
        });
    }

    /// Merges what the ledger last read back, when it is new: one atomic
    /// load when nothing changed.
    pub fn absorb_learnt(&self) {
        let Some(l) = &self.ledger else { return };
        let generation = l.board.generation();
        if generation == 0 || !self.bounds.absorbed(generation) {
            return;
        }
        for t in l.board.rows() {
            for (id, m) in self.policy.models.iter().enumerate() {
                if m.upstream_model == t.model
                    && self.policy.providers[m.provider].name == t.provider
                {
                    self.bounds.merge(id, &t.learnt);
                }
            }
        }
    }
}
