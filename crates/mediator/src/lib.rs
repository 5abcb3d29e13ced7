//! Mediation (`voxide mediator`): groups the proxy's accounting records by Call-ID and turns each
//! group into call detail records, exactly once.
//!
//! - [`core`]: the sans-IO decision for one group of acc rows ([`decide`]): CDRs, wait, or
//!   trash with a reason.
//! - [`runner`]: the polling loop over the store; the CDR insert and the move of the acc rows
//!   to `acc_archive`/`acc_trash` happen in one transaction ([`store::CdrRepository`]).
//! - [`export`]: CSV export with a count header and an MD5 footer (docs/cdr-export.md).

pub mod core;
pub mod export;
pub mod runner;

pub use crate::core::{Decision, decide, status_for_code};
pub use crate::export::{ExportError, ExportReport, export};
pub use crate::runner::{MediatorConfig, MediatorHandle, PassStats, run_pass, spawn};
