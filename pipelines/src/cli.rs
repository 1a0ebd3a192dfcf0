//! Command-line pieces the binaries share, for `clap`'s derive API: the memory mode, a port override,
//! and the arguments of the binaries that run a declared pipeline ([`DeclaredArgs`]).
//!
//! Two conventions, both as before clap came:
//! - the tools (`forward-demo`, `rosette-perf`, `bench-dispatch`) take their own options first and EAL
//!   arguments after `--`: `forward-demo --seconds 5 -- --log-level=lib.eal:debug`;
//! - the declared pipelines (`filter`, `forwarder`, `reflector`) are DPDK programs: EAL arguments first,
//!   the application's options after `--`: `reflector -l 0-1 --port wire=net_memif0,… -- --seconds 5`.

use std::ffi::OsString;

use clap::{Args, Parser, ValueEnum};

use rosette::pipeline::LaunchOptions;
use rosette::substrate::MemoryMode;

/// Where DPDK's memory comes from (`--memory`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum MemoryArg {
    /// Hugepages when some are free and hugetlbfs is mounted, otherwise `--no-huge -m 256`.
    #[default]
    Auto,
    /// Hugepages, or fail.
    Hugepages,
    /// Ordinary pages (`--no-huge`): about 3× slower forwarding.
    NoHuge,
}

impl MemoryArg {
    /// The spelling on the command line.
    pub fn name(self) -> &'static str {
        match self {
            MemoryArg::Auto => "auto",
            MemoryArg::Hugepages => "hugepages",
            MemoryArg::NoHuge => "no-huge",
        }
    }
}

impl From<MemoryArg> for MemoryMode {
    fn from(m: MemoryArg) -> MemoryMode {
        match m {
            MemoryArg::Auto => MemoryMode::Auto,
            MemoryArg::Hugepages => MemoryMode::Hugepages,
            MemoryArg::NoHuge => MemoryMode::NoHuge,
        }
    }
}

impl From<MemoryMode> for MemoryArg {
    fn from(m: MemoryMode) -> MemoryArg {
        match m {
            MemoryMode::Auto => MemoryArg::Auto,
            MemoryMode::Hugepages => MemoryArg::Hugepages,
            MemoryMode::NoHuge => MemoryArg::NoHuge,
        }
    }
}

/// Parses a `--port NAME=DEVICE` value.
pub fn parse_port(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, device)) if !name.is_empty() && !device.is_empty() => Ok((name.to_owned(), device.to_owned())),
        _ => Err(format!("expected NAME=DEVICE (e.g. wire=net_memif0,role=client), not {text:?}")),
    }
}

/// The EAL side of a declared pipeline's command line (everything before `--`).
#[derive(Debug, Clone, Parser)]
pub struct DeclaredEalArgs {
    /// Replaces a declared port's device: NAME=DEVICE, e.g. `--port wire=net_ring0` (repeatable).
    #[arg(long = "port", value_name = "NAME=DEVICE", value_parser = parse_port)]
    pub ports: Vec<(String, String)>,
    /// Runs without hugepages (`--no-huge`), whatever the declaration's memory mode.
    #[arg(long)]
    pub no_huge: bool,
    /// Turns packet capture off: no `rte_pdump_init`, hugepage files unlinked at once (`--huge-unlink`);
    /// `dpdk-dumpcap` can then not attach. Capture is on by default and needs hugepages.
    #[arg(long)]
    pub no_capture: bool,
    /// EAL arguments, passed to `rte_eal_init` after the generated ones (`-l`, `--log-level`, …; see
    /// `dpdk-testpmd --help` for EAL's list).
    #[arg(value_name = "EAL ARGS", allow_hyphen_values = true, trailing_var_arg = true)]
    pub eal: Vec<String>,
}

/// The application side of a declared pipeline's command line (everything after `--`).
#[derive(Debug, Clone, Parser)]
#[command(about = "Application options of a declared rosette pipeline (after `--`)")]
pub struct DeclaredAppArgs {
    /// Runs for N seconds, then stops and prints the totals (0 = until Ctrl-C).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub seconds: u64,
}

/// Both sides of a declared pipeline's command line.
#[derive(Debug, Clone)]
pub struct DeclaredArgs {
    /// The launch options (EAL arguments, port overrides, memory).
    pub options: LaunchOptions,
    /// The application's options.
    pub app: DeclaredAppArgs,
}

impl DeclaredArgs {
    /// Parses `[EAL args] [--port NAME=DEVICE] [--no-huge] [--no-capture] [-- [--seconds N]]` for the program `name`;
    /// exits like clap (help: 0, a wrong value: 2 with clap's message) when it must.
    pub fn parse(name: &'static str, args: impl IntoIterator<Item = OsString>) -> DeclaredArgs {
        Self::try_parse(name, args).unwrap_or_else(|e| e.exit())
    }

    /// [`DeclaredArgs::parse`] without exiting.
    pub fn try_parse(
        name: &'static str,
        args: impl IntoIterator<Item = OsString>,
    ) -> Result<DeclaredArgs, clap::Error> {
        let args: Vec<OsString> = args.into_iter().collect();
        let split = args.iter().position(|a| a == "--").unwrap_or(args.len());
        let (front, back) = (&args[..split], args.get(split + 1..).unwrap_or_default());
        let program = std::iter::once(OsString::from(name));
        let eal = eal_command(name).try_get_matches_from(program.clone().chain(front.iter().cloned()))?;
        let eal = <DeclaredEalArgs as clap::FromArgMatches>::from_arg_matches(&eal)?;
        let app = DeclaredAppArgs::command_named(name).try_get_matches_from(program.chain(back.iter().cloned()))?;
        let app = <DeclaredAppArgs as clap::FromArgMatches>::from_arg_matches(&app)?;
        // EAL arguments may carry `--port`/`--no-huge` after the first EAL argument (clap then keeps them
        // with the EAL arguments): the runtime's own parser takes them out.
        let (mut options, rest) = LaunchOptions::from_args(eal.eal)
            .map_err(|e| eal_command(name).error(clap::error::ErrorKind::ValueValidation, e))?;
        debug_assert!(rest.is_empty(), "the arguments were split at `--` already");
        for (port, device) in eal.ports {
            options = options.device(port, device);
        }
        if eal.no_huge {
            options = options.memory(MemoryMode::NoHuge);
        }
        if eal.no_capture {
            options = options.capture(false);
        }
        Ok(DeclaredArgs { options, app })
    }
}

/// The EAL side's command for the program `name`, its help also listing the application's options.
fn eal_command(name: &'static str) -> clap::Command {
    DeclaredEalArgs::command_named(name)
        .about(format!(
            "Runs the declared `{name}` pipeline (see pipelines/src/declared.rs). A DPDK program: EAL \
             arguments first, then `--` and the application's options."
        ))
        .after_help(format!(
            "Application options (after `--`):\n      --seconds <N>  Runs for N seconds, then stops and prints \
             the totals [default: 0 = until Ctrl-C]\n\nExample: {name} -l 0-1 --port \
             wire=net_memif0,role=client,socket=/tmp/m.sock -- --seconds 5\n\nLog level: RUST_LOG \
             (default warn)."
        ))
}

/// A clap command renamed to the running program (the declared binaries share one definition).
trait Named {
    fn command_named(name: &'static str) -> clap::Command;
}

impl<T: clap::CommandFactory> Named for T {
    fn command_named(name: &'static str) -> clap::Command {
        T::command().name(name).bin_name(name)
    }
}

/// EAL arguments after `--`, for the tools that take their own options first.
#[derive(Debug, Clone, Default, Args)]
pub struct EalPassthrough {
    /// EAL arguments, after `--`: passed to `rte_eal_init` after the generated ones
    /// (e.g. `-- --log-level=lib.eal:debug`).
    #[arg(last = true, value_name = "EAL ARGS")]
    pub eal: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn declared(list: &[&str]) -> Result<DeclaredArgs, clap::Error> {
        DeclaredArgs::try_parse("reflector", list.iter().map(OsString::from))
    }

    #[test]
    fn declared_pipelines_take_eal_arguments_first() {
        let a =
            declared(&["-l", "0-1", "--port", "wire=net_ring0", "--log-level=lib.eal:debug", "--", "--seconds", "5"])
                .unwrap();
        assert_eq!(a.app.seconds, 5);
        assert_eq!(a.options.devices, [("wire".to_owned(), "net_ring0".to_owned())]);
        assert_eq!(a.options.eal_args, ["-l", "0-1", "--log-level=lib.eal:debug"]);
        let b = declared(&["--port=wire=net_null0", "--no-huge"]).unwrap();
        assert_eq!((b.app.seconds, b.options.memory), (0, Some(MemoryMode::NoHuge)));
        assert_eq!(b.options.devices, [("wire".to_owned(), "net_null0".to_owned())]);
        assert_eq!(b.options.capture, None);
        assert_eq!(declared(&["--no-capture"]).unwrap().options.capture, Some(false));
        assert_eq!(declared(&["-l", "0-1", "--no-capture"]).unwrap().options.capture, Some(false));
        assert!(declared(&["--port", "nope"]).is_err());
        assert!(declared(&["--", "--seconds", "soon"]).is_err());
        assert!(declared(&["--", "--bogus"]).is_err());
    }
}
