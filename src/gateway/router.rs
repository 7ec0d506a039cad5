//! Which learned router a gateway routes with: the one `serve` loaded,
//! with the heads file its policy names (`router: { heads }`) in place of
//! the shipped heads. A reload reads the file again.

use std::sync::Arc;

use anyhow::bail;

use super::Options;
use crate::policy::Policy;

/// The learned router for `policy`: the loaded one, with the heads file
/// the policy names in place of its own.
pub(super) fn router_for(
    policy: &Policy,
    opts: &Options,
) -> anyhow::Result<Option<Arc<crate::classify::Router>>> {
    let Some(h) = &policy.router_heads else {
        return Ok(opts.router.clone());
    };
    let Some(base) = &opts.router else {
        bail!(
            "`router.heads` names {}, but the learned router's embedding is not loaded \
             (serve --router off, or its files are missing: scripts/fetch-test-model fetches them)",
            h.path
        );
    };
    let router = base
        .with_heads(h.heads.clone())
        .map_err(|e| anyhow::anyhow!("{}: {e}", h.path))?;
    tracing::info!(heads = %h.path, "learned router heads from the policy");
    Ok(Some(Arc::new(router)))
}
