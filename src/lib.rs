//! tollgate: a cost-aware model routing gateway with an OpenAI-compatible API.
//!
//! The request path (`server::chat`): authenticate → parse → admit →
//! classify → route → cache → dispatch → settle. `docs/architecture.md`
//! has the whole picture.

pub mod circuit;
pub mod classify;
pub mod cli;
pub mod clock;
pub mod error;
pub mod gateway;
pub mod ledger;
#[cfg(feature = "local")]
pub mod local;
pub mod messages;
pub mod money;
pub mod policy;
pub mod report;
pub mod request;
pub mod responses;
pub mod route;
pub mod secret;
pub mod server;
pub mod state;
pub mod telemetry;
pub mod upstream;
