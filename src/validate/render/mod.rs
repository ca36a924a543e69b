//! Renderers: diagnostics and the run's summary, formatted for people (text) or tools (json, github,
//! sarif). They only format; what to report was decided before.

pub mod github;
pub mod json;
pub mod sarif;
pub mod text;

use crate::diag::{Diagnostic, Severity};

/// What one `validate` run looked at, for the summary line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub files: usize,
    /// Traffic-rule documents checked.
    pub checked: usize,
    /// Documents of other kinds (or left out by `--kinds`).
    pub skipped: usize,
    /// Empty documents.
    pub empty: usize,
    pub errors: usize,
    pub warnings: usize,
}

impl Summary {
    pub fn count(&mut self, diagnostics: &[Diagnostic]) {
        for d in diagnostics {
            match d.severity {
                Severity::Error => self.errors += 1,
                Severity::Warning => self.warnings += 1,
            }
        }
    }
}
