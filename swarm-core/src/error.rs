//! Errors of invalid user input.

use std::fmt;

/// One thing wrong with a spec.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Problem {
    /// The field at fault, e.g. `mode.replicated.replicas`.
    pub field: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// Everything wrong with a spec, each problem naming its field and the fix.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize,
)]
pub struct SpecError {
    /// The problems, in the order they were found.
    pub problems: Vec<Problem>,
}

impl SpecError {
    /// An error with one problem.
    #[must_use]
    pub fn single(field: impl Into<String>, message: impl Into<String>) -> Self {
        let mut e = Self::default();
        e.push(field, message);
        e
    }

    /// Records a problem.
    pub fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            field: field.into(),
            message: message.into(),
        });
    }

    /// Records every problem of `other`.
    pub fn extend(&mut self, other: SpecError) {
        self.problems.extend(other.problems);
    }

    /// `Ok` when no problem was recorded.
    pub fn into_result(self) -> Result<(), SpecError> {
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(self)
        }
    }
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.problems.as_slice() {
            [] => f.write_str("invalid spec"),
            [p] => f.write_str(&p.message),
            ps => {
                write!(f, "{} problems: ", ps.len())?;
                for (i, p) in ps.iter().enumerate() {
                    if i > 0 {
                        f.write_str("; ")?;
                    }
                    f.write_str(&p.message)?;
                }
                Ok(())
            }
        }
    }
}
