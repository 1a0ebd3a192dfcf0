//! Just enough command-line parsing for the binaries: `--name value`, `--name=value` and `--flag`.

use std::str::FromStr;

/// Parsed command-line arguments.
#[derive(Debug, Clone)]
pub struct Args {
    program: String,
    args: Vec<String>,
}

impl Args {
    /// The process's arguments.
    pub fn from_env() -> Args {
        let mut all = std::env::args();
        let program = all.next().unwrap_or_default();
        Args { program, args: all.collect() }
    }

    /// Arguments from a list (tests).
    pub fn from_vec(args: Vec<String>) -> Args {
        Args { program: "test".to_owned(), args }
    }

    /// True when `--help` or `-h` was given.
    pub fn wants_help(&self) -> bool {
        self.args.iter().any(|a| a == "--help" || a == "-h")
    }

    /// True when the flag `name` (e.g. `--server`) is present.
    pub fn flag(&self, name: &str) -> bool {
        self.args.iter().any(|a| a == name)
    }

    /// The raw value of `name`, from `name value` or `name=value`.
    pub fn raw(&self, name: &str) -> Option<&str> {
        let mut iter = self.args.iter();
        while let Some(arg) = iter.next() {
            if arg == name {
                return iter.next().map(String::as_str);
            }
            if let Some(value) = arg.strip_prefix(name).and_then(|rest| rest.strip_prefix('=')) {
                return Some(value);
            }
        }
        None
    }

    /// The value of `name` parsed as `T`, or `default`; exits with a readable message when it does not
    /// parse.
    pub fn value<T: FromStr>(&self, name: &str, default: T) -> T {
        match self.raw(name) {
            None => default,
            Some(text) => text.parse().unwrap_or_else(|_| {
                eprintln!("{}: cannot parse {name} value {text:?}", self.program);
                std::process::exit(2);
            }),
        }
    }

    /// Everything after a `--` separator (passed through, e.g. as EAL arguments).
    pub fn passthrough(&self) -> Vec<String> {
        match self.args.iter().position(|a| a == "--") {
            Some(i) => self.args[i + 1..].to_vec(),
            None => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Args;

    fn args(list: &[&str]) -> Args {
        Args::from_vec(list.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn values_flags_and_passthrough() {
        let a = args(&["--seconds", "5", "--size=64", "--server", "--", "--log-level=debug"]);
        assert_eq!(a.value("--seconds", 1u64), 5);
        assert_eq!(a.value("--size", 0usize), 64);
        assert_eq!(a.value("--missing", 7u32), 7);
        assert!(a.flag("--server"));
        assert_eq!(a.passthrough(), ["--log-level=debug"]);
    }
}
