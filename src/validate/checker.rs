//! The checker: walks an object, keeping the field path, and collects findings.

use crate::diag::{Code, Severity};
use crate::load::path::{Seg, Target};

/// One problem found in an object, located by field path (positions are attached later, by the caller
/// that has the source).
#[derive(Debug, Clone, PartialEq)]
pub struct Finding<'r> {
    pub severity: Severity,
    pub code: Code,
    pub path: Vec<Seg<'r>>,
    pub target: Target,
    pub message: String,
    pub help: Option<String>,
}

#[derive(Default)]
pub struct Checker<'r> {
    path: Vec<Seg<'r>>,
    pub findings: Vec<Finding<'r>>,
}

impl<'r> Checker<'r> {
    /// Runs `f` one field deeper.
    pub fn at<T>(&mut self, key: &'r str, f: impl FnOnce(&mut Self) -> T) -> T {
        self.path.push(Seg::Key(key));
        let out = f(self);
        self.path.pop();
        out
    }

    /// Runs `f` on list element `i`.
    pub fn index<T>(&mut self, i: usize, f: impl FnOnce(&mut Self) -> T) -> T {
        self.path.push(Seg::Index(i));
        let out = f(self);
        self.path.pop();
        out
    }

    /// Runs `f` on the field `key` when `value` is present.
    pub fn opt<T>(&mut self, key: &'r str, value: Option<&'r T>, f: impl FnOnce(&mut Self, &'r T)) {
        if let Some(v) = value {
            self.at(key, |c| f(c, v));
        }
    }

    fn push(&mut self, severity: Severity, code: Code, target: Target, message: String, help: Option<String>) {
        self.findings.push(Finding {
            severity,
            code,
            path: self.path.clone(),
            target,
            message,
            help,
        });
    }

    /// An error about the value at the current path.
    pub fn error(&mut self, code: Code, message: impl Into<String>) -> Report<'_, 'r> {
        self.push(Severity::Error, code, Target::Value, message.into(), None);
        Report { checker: self }
    }

    /// An error about the field at the current path itself (its key): a field that should not be there.
    pub fn error_key(&mut self, code: Code, message: impl Into<String>) -> Report<'_, 'r> {
        self.push(Severity::Error, code, Target::Key, message.into(), None);
        Report { checker: self }
    }

    pub fn warn(&mut self, code: Code, message: impl Into<String>) -> Report<'_, 'r> {
        self.push(Severity::Warning, code, Target::Value, message.into(), None);
        Report { checker: self }
    }

    pub fn warn_key(&mut self, code: Code, message: impl Into<String>) -> Report<'_, 'r> {
        self.push(Severity::Warning, code, Target::Key, message.into(), None);
        Report { checker: self }
    }

    /// A required field that is missing: reported at `field` (which the locator resolves to the nearest
    /// existing parent).
    pub fn missing(&mut self, field: &'r str, message: impl Into<String>) -> Report<'_, 'r> {
        self.path.push(Seg::Key(field));
        self.push(Severity::Error, Code::MissingField, Target::Key, message.into(), None);
        self.path.pop();
        Report { checker: self }
    }

    /// The current path, formatted (`spec.route[1]`), for messages.
    pub fn here(&self) -> String {
        crate::load::path::format(&self.path)
    }
}

/// Lets a finding gain a help line: `c.error(..).help("...")`.
pub struct Report<'c, 'r> {
    checker: &'c mut Checker<'r>,
}

impl Report<'_, '_> {
    pub fn help(self, help: impl Into<String>) {
        if let Some(last) = self.checker.findings.last_mut() {
            last.help = Some(help.into());
        }
    }
}
