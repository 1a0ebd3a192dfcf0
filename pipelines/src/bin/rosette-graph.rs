//! `rosette-graph <file.yaml>`: draws a pipeline declaration as Graphviz DOT (ports with their queues,
//! lcores as clusters, stages in order per lcore, rings and edges; see [`pipelines::graph`]), on stdout
//! or into `-o file.dot`, and as SVG with `--svg out.svg` when Graphviz's `dot` is installed.
//!
//! The file is read and validated as the `pipeline!` macro does it, params of the built-in stages
//! included (every check the runtime would make when it builds them), and errors are the macro's
//! `path:line:col: message` lines (exit code 1). The params of user stages (a Rust path) are checked by
//! rustc only: the tool cannot see their types.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};

use clap::Parser;

/// Draws a rosette pipeline declaration (YAML, the format of the `pipeline!` macro) as Graphviz DOT.
#[derive(Debug, Parser)]
#[command(name = "rosette-graph", after_help = "Example: rosette-graph pipelines/bench_forward.yaml --svg fwd.svg")]
struct Cli {
    /// The pipeline declaration (YAML; every document of the file is drawn).
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Writes the DOT to this file instead of stdout.
    #[arg(short, long, value_name = "FILE.dot")]
    output: Option<PathBuf>,
    /// Also renders SVG into this file with Graphviz (`dot -Tsvg`; `apt-get install graphviz`).
    #[arg(long, value_name = "OUT.svg")]
    svg: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    pipelines::logging::init();
    let written = cli.file.display().to_string();
    let text = match std::fs::read_to_string(&cli.file) {
        Ok(t) => t,
        Err(e) => {
            let path = std::env::current_dir().map(|d| d.join(&cli.file)).unwrap_or_else(|_| cli.file.clone());
            eprintln!("{written}: cannot read {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    };
    let pipelines = match rosette_config::parse_and_validate(&text) {
        Ok(p) => p,
        Err(diagnostics) => {
            for d in &diagnostics {
                eprintln!("{}", d.render(&written));
            }
            return ExitCode::FAILURE;
        }
    };
    // The macro's const-evaluated param checks of the built-in stages: what else would fail to compile.
    let param_errors = pipelines::graph::param_errors(&written, &pipelines);
    if !param_errors.is_empty() {
        for e in &param_errors {
            eprintln!("{e}");
        }
        return ExitCode::FAILURE;
    }
    let dot = pipelines::graph::to_dot(&written, &pipelines);
    let wrote = match &cli.output {
        Some(path) => std::fs::write(path, &dot).map_err(|e| format!("cannot write {}: {e}", path.display())),
        None => std::io::stdout().write_all(dot.as_bytes()).map_err(|e| format!("cannot write the DOT: {e}")),
    };
    if let Err(e) = wrote {
        eprintln!("rosette-graph: {e}");
        return ExitCode::FAILURE;
    }
    if let Some(svg) = &cli.svg {
        if let Err(e) = render_svg(&dot, svg) {
            eprintln!("rosette-graph: {e}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

/// Runs `dot -Tsvg -o <svg>` on the DOT.
fn render_svg(dot: &str, svg: &PathBuf) -> Result<(), String> {
    let mut child = match Command::new("dot").arg("-Tsvg").arg("-o").arg(svg).stdin(Stdio::piped()).spawn() {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!(
                "cannot render {}: Graphviz's `dot` is not installed (apt-get install graphviz); the DOT was written",
                svg.display()
            ))
        }
        Err(e) => return Err(format!("cannot run dot: {e}")),
    };
    let fed = child.stdin.take().expect("stdin is piped").write_all(dot.as_bytes());
    let status = child.wait().map_err(|e| format!("dot: {e}"))?;
    fed.map_err(|e| format!("cannot feed dot: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("dot -Tsvg failed ({status})"))
    }
}
