//! Locations and diagnostics shared by both front ends and the validator.
//!
//! A proc-macro cannot point a span into a YAML file, so a location is either a YAML line:column (rendered in
//! the message text, the span going on the path literal of the macro call) or a token span (the span of the
//! offending attribute tokens). The validator does not care which: it only carries locations through.

use std::fmt;

use proc_macro2::Span;

/// Where a piece of the declaration came from.
///
/// Locations are metadata, not meaning: `Loc` compares equal to every other `Loc`, so two IR values that
/// declare the same pipeline compare equal whether they came from YAML or from attributes.
#[derive(Clone, Copy, Debug)]
pub enum Loc {
    /// A 1-based line and column in the YAML file.
    Yaml {
        /// 1-based line.
        line: u32,
        /// 1-based column.
        column: u32,
    },
    /// The span of the attribute token that declared it.
    Tokens(Span),
    /// The first and last token of the attribute tokens that declared it (stable Rust cannot join spans,
    /// so the range is kept as its two ends and rendered like `syn::Error::new_spanned`).
    TokenRange(Span, Span),
    /// No better location is known (e.g. an error serde-saphyr could not place).
    Unknown,
}

impl PartialEq for Loc {
    fn eq(&self, _other: &Self) -> bool {
        // Deliberate: see the type documentation.
        true
    }
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Loc::Yaml { line, column } => write!(f, "{line}:{column}"),
            // Stable proc-macro spans do not expose line numbers; the span itself is the location.
            Loc::Tokens(_) | Loc::TokenRange(..) => f.write_str("<tokens>"),
            Loc::Unknown => f.write_str("?:?"),
        }
    }
}

/// A value together with the place it was declared.
///
/// Equality compares the value only (see [`Loc`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Located<T> {
    /// The declared value.
    pub value: T,
    /// Where it was declared; for a defaulted value, the location of the enclosing declaration.
    pub loc: Loc,
}

impl<T> Located<T> {
    /// Pairs `value` with `loc`.
    pub fn new(value: T, loc: Loc) -> Self {
        Located { value, loc }
    }
}

/// One error found while parsing, lowering or validating a pipeline declaration.
#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostic {
    /// Where the problem is.
    pub loc: Loc,
    /// What the problem is, without any location prefix.
    pub message: String,
}

impl Diagnostic {
    /// Builds a diagnostic at `loc`.
    pub fn new(loc: Loc, message: impl Into<String>) -> Self {
        Diagnostic { loc, message: message.into() }
    }

    /// The message of a diagnostic of the YAML file `path` as rosette prints it: `path:line:col: message`
    /// (`path: message` when the place is unknown). The `pipeline!` macro and `rosette-graph` both use
    /// it, so their messages are the same.
    pub fn render(&self, path: &str) -> String {
        match self.loc {
            Loc::Unknown => format!("{path}: {}", self.message),
            loc => format!("{path}:{loc}: {}", self.message),
        }
    }
}

/// Collects diagnostics so every pass can report all of its errors instead of stopping at the first.
#[derive(Debug, Default)]
pub struct Diagnostics {
    errors: Vec<Diagnostic>,
}

impl Diagnostics {
    /// An empty collection.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records an error at `loc`.
    pub fn error(&mut self, loc: Loc, message: impl Into<String>) {
        self.errors.push(Diagnostic::new(loc, message));
    }

    /// Records an already built diagnostic.
    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.errors.push(diagnostic);
    }

    /// Whether nothing has been recorded.
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// `Ok(value)` when nothing was recorded, otherwise every recorded error.
    pub fn finish<T>(self, value: T) -> Result<T, Vec<Diagnostic>> {
        if self.errors.is_empty() {
            Ok(value)
        } else {
            Err(self.errors)
        }
    }
}

/// `"; did you mean `near`?"` when one of `candidates` is close to the misspelt `word` (see
/// [`rosette_checks::suggest`]), else `""`: appended to every "unknown …" message of the declarations.
pub fn did_you_mean(word: &str, candidates: &[&str]) -> String {
    match rosette_checks::closest(word, candidates) {
        Some(near) => format!("; did you mean `{near}`?"),
        None => String::new(),
    }
}
