//! The binaries' logger: `env_logger` on stderr, configured by `RUST_LOG` (e.g. `RUST_LOG=info`,
//! `RUST_LOG=rosette=debug`), default `warn` so rosette's warnings (lcores remapped onto fewer CPUs,
//! hugepages not usable) are always seen. `ROSETTE_LOG`, the variable of the earlier logger, is still
//! read when `RUST_LOG` is not set.
//!
//! rosette itself only uses the `log` facade: a program that embeds it sees its messages by installing
//! any logger (`env_logger::init()` is one line).

use std::io::Write;

/// The level used when neither `RUST_LOG` nor `ROSETTE_LOG` is set.
pub const DEFAULT_LEVEL: &str = "warn";

/// Installs the logger; later calls do nothing.
pub fn init() {
    let filter = std::env::var("RUST_LOG")
        .or_else(|_| std::env::var("ROSETTE_LOG"))
        .unwrap_or_else(|_| DEFAULT_LEVEL.to_owned());
    let _ = env_logger::Builder::new()
        .parse_filters(&filter)
        .format(|out, record| {
            let level = match record.level() {
                log::Level::Error => "error",
                log::Level::Warn => "warning",
                log::Level::Info => "info",
                log::Level::Debug => "debug",
                log::Level::Trace => "trace",
            };
            writeln!(out, "{} {level}: {}", record.target(), record.args())
        })
        .try_init();
}
