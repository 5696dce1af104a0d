//! `archc`: the command-line front end. Reads files, calls the library, prints, and sets the exit code:
//! 0 when every file is clean (warnings allowed), 1 when any file has errors, 2 for usage or I/O problems.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use archc::diagnostic::{LineIndex, Severity};
use archc::{compile, Checked, Code, Diagnostic, SourceKind};
use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "archc",
    version,
    about = "Check neural-network architectures and compile them to candle models"
)]
struct Cli {
    /// When to colour diagnostics.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto, global = true)]
    color: ColorChoice,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Infer every shape and report every error and warning.
    Check {
        /// `.arch` or `.yaml` files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Output format: human-readable diagnostics or one JSON object per file.
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        /// Treat warnings as errors (exit 1).
        #[arg(long)]
        deny_warnings: bool,
    },
    /// Print a table of layers, output shapes, parameters and MACs.
    Summary {
        file: PathBuf,
        /// Which network, when the file defines several (default: all).
        #[arg(long)]
        network: Option<String>,
        /// Show rows nested at most this deep (0: top-level statements only).
        #[arg(long)]
        depth: Option<usize>,
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// Print the Rust (candle) code generated for a file's networks.
    Emit {
        file: PathBuf,
        /// Print prettyplease's layout as is, without passing it through `rustfmt` (which is used, as bindgen
        /// does, when it is on PATH, so the output is `rustfmt --check` clean).
        #[arg(long)]
        no_rustfmt: bool,
    },
    /// Draw a network as a graph: an SVG picture (laid out in-process) or Graphviz DOT.
    Graph {
        file: PathBuf,
        #[arg(long, value_enum, default_value_t = GraphFormat::Svg)]
        format: GraphFormat,
        /// Draw each block instance (and each chain of plain layers) as one node.
        #[arg(long)]
        collapse: bool,
        /// Which network, when the file defines several (default: all).
        #[arg(long)]
        network: Option<String>,
        /// Draw a file with errors too: what the checker recovered, the offending nodes in red.
        #[arg(long)]
        allow_errors: bool,
    },
    /// Format `.arch` files in place: canonical layout, aligned rows, every comment kept.
    Fmt {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Write nothing: show the changes as a diff and exit 1 if any file is not formatted.
        #[arg(long)]
        check: bool,
    },
    /// Print a long explanation of a diagnostic code, e.g. `archc explain E0102`.
    Explain {
        /// The code, e.g. E0102; `--list` shows all codes.
        code: Option<String>,
        #[arg(long)]
        list: bool,
    },
    /// Run the language server on stdin/stdout (for editors: diagnostics, shapes as inlay hints, hover, ...).
    #[cfg(feature = "lsp")]
    Lsp,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Human,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum GraphFormat {
    Svg,
    Dot,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ColorChoice {
    Auto,
    Always,
    Never,
}

/// A usage or I/O failure: exit code 2.
struct Fatal(String);

fn main() -> ExitCode {
    let cli = Cli::parse();
    let color = match cli.color {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
        }
    };
    let result = match cli.command {
        Command::Check {
            files,
            format,
            deny_warnings,
        } => run_check(&files, format, deny_warnings, color),
        Command::Summary {
            file,
            network,
            depth,
            format,
        } => run_summary(&file, network.as_deref(), depth, format, color),
        Command::Explain { code, list } => run_explain(code.as_deref(), list),
        Command::Emit { file, no_rustfmt } => run_emit(&file, !no_rustfmt, color),
        Command::Fmt { files, check } => run_fmt(&files, check, color),
        #[cfg(feature = "lsp")]
        Command::Lsp => run_lsp(),
        Command::Graph {
            file,
            format,
            collapse,
            network,
            allow_errors,
        } => run_graph(&file, format, collapse, network, allow_errors, color),
    };
    result.unwrap_or_else(Fatal::report)
}

impl Fatal {
    /// Prints the error and returns the exit code for usage and I/O errors, 2.
    fn report(self) -> ExitCode {
        eprintln!("error: {}", self.0);
        ExitCode::from(2)
    }
}

/// The exit code of a command over several files: 2 if any could not be read or written, else 1 if any has
/// errors, else 0.
fn exit_code(io_failed: bool, failed: bool) -> ExitCode {
    if io_failed {
        ExitCode::from(2)
    } else if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn read_source(path: &Path) -> Result<String, Fatal> {
    if path.is_dir() {
        return Err(Fatal(format!(
            "{}: is a directory, not an architecture file",
            path.display()
        )));
    }
    let limit = archc::syntax::MAX_SOURCE_BYTES;
    let cannot_read = |e: std::io::Error| Fatal(format!("{}: cannot read: {e}", path.display()));
    // Read at most one byte past the limit, so a huge file (or `/dev/zero`) is rejected without being read whole.
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .map_err(cannot_read)?
        .take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot_read)?;
    if bytes.len() > limit {
        // A device or a pipe has no size to report.
        let size = match std::fs::metadata(path) {
            Ok(m) if m.is_file() => format!("{} bytes is", m.len()),
            _ => "the input is".to_string(),
        };
        return Err(Fatal(format!(
            "{}: {size} larger than the {limit} byte limit",
            path.display(),
        )));
    }
    String::from_utf8(bytes).map_err(|e| {
        let offset = e.utf8_error().valid_up_to();
        let valid = String::from_utf8_lossy(&e.as_bytes()[..offset]);
        let (line, column) = LineIndex::new(&valid).line_col(offset);
        Fatal(format!(
            "{}:{line}:{column}: not valid UTF-8 (byte 0x{:02x} at offset {offset}); architecture files are UTF-8 text",
            path.display(),
            e.as_bytes()[offset]
        ))
    })
}

fn display_name(path: &Path) -> String {
    path.display().to_string()
}

fn run_check(
    files: &[PathBuf],
    format: Format,
    deny_warnings: bool,
    color: bool,
) -> Result<ExitCode, Fatal> {
    let mut failed = false;
    let mut io_failed = false;
    let mut json_files = Vec::new();
    for path in files {
        let source = match read_source(path) {
            Ok(source) => source,
            Err(Fatal(message)) => {
                eprintln!("error: {message}");
                io_failed = true;
                // In JSON every file named gets an entry, so a script never reads an unread file as clean.
                if let Format::Json = format {
                    json_files.push(serde_json::json!({
                        "file": display_name(path),
                        "ok": false,
                        "error": message,
                        "networks": [],
                        "diagnostics": [],
                    }));
                }
                continue;
            }
        };
        let name = display_name(path);
        let checked = compile(SourceKind::from_path(&name), &source);
        let errors = checked.diagnostics.iter().filter(|d| d.is_error()).count();
        let warnings = checked.diagnostics.len() - errors;
        failed |= errors > 0 || (deny_warnings && warnings > 0);
        match format {
            Format::Human => {
                eprint!(
                    "{}",
                    archc::render::render(&name, &source, &checked.diagnostics, color)
                );
                eprintln!("{}", status_line(&name, &checked, errors, warnings));
            }
            Format::Json => json_files.push(json_report(&name, &source, &checked)),
        }
    }
    if let Format::Json = format {
        let text = serde_json::to_string_pretty(&serde_json::Value::Array(json_files))
            .expect("JSON values serialise");
        let _ = writeln!(std::io::stdout(), "{text}");
    }
    Ok(exit_code(io_failed, failed))
}

fn status_line(name: &str, checked: &Checked, errors: usize, warnings: usize) -> String {
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    if errors > 0 {
        format!(
            "{name}: {}, {}",
            plural(errors, "error"),
            plural(warnings, "warning")
        )
    } else {
        let networks: Vec<String> = checked
            .networks
            .iter()
            .map(|n| format!("{} {} → {}", n.name, n.input, n.output))
            .collect();
        format!(
            "{name}: ok ({}{}){}",
            plural(checked.networks.len(), "network"),
            if networks.is_empty() {
                String::new()
            } else {
                format!(": {}", networks.join(", "))
            },
            if warnings > 0 {
                format!(", {}", plural(warnings, "warning"))
            } else {
                String::new()
            }
        )
    }
}

fn json_report(name: &str, source: &str, checked: &Checked) -> serde_json::Value {
    let index = LineIndex::new(source);
    let position = |offset: u32| {
        let (line, column) = index.line_col(offset as usize);
        serde_json::json!({ "offset": offset, "line": line, "column": column })
    };
    let diagnostics: Vec<serde_json::Value> = checked
        .diagnostics
        .iter()
        .map(|d: &Diagnostic| {
            serde_json::json!({
                "severity": match d.severity { Severity::Error => "error", Severity::Warning => "warning" },
                "code": d.code.as_str(),
                "message": d.message,
                "start": position(d.primary.span.start),
                "end": position(d.primary.span.end),
                "label": d.primary.message,
                "secondary": d.secondary.iter().map(|l| serde_json::json!({
                    "start": position(l.span.start), "end": position(l.span.end), "label": l.message
                })).collect::<Vec<_>>(),
                "notes": d.notes,
                "help": d.help,
            })
        })
        .collect();
    serde_json::json!({
        "file": name,
        "ok": !checked.has_errors(),
        "networks": checked.networks.iter().map(|n| serde_json::json!({
            "name": n.name, "input": n.input.dims(), "output": n.output.dims()
        })).collect::<Vec<_>>(),
        "diagnostics": diagnostics,
    })
}

fn checked_or_report(path: &Path, color: bool) -> Result<(String, String, Checked), ExitCode> {
    let source = read_source(path).map_err(Fatal::report)?;
    let name = display_name(path);
    let checked = compile(SourceKind::from_path(&name), &source);
    if checked.has_errors() {
        eprint!(
            "{}",
            archc::render::render(&name, &source, &checked.diagnostics, color)
        );
        let errors = checked.diagnostics.iter().filter(|d| d.is_error()).count();
        eprintln!("{name}: {errors} error(s); fix them first");
        return Err(ExitCode::from(1));
    }
    Ok((name, source, checked))
}

fn run_summary(
    path: &Path,
    network: Option<&str>,
    depth: Option<usize>,
    format: Format,
    color: bool,
) -> Result<ExitCode, Fatal> {
    let (_, _, checked) = match checked_or_report(path, color) {
        Ok(ok) => ok,
        Err(code) => return Ok(code),
    };
    let networks: Vec<_> = checked
        .networks
        .iter()
        .filter(|n| network.map_or(true, |wanted| wanted == n.name))
        .collect();
    if networks.is_empty() {
        let names: Vec<&str> = checked.networks.iter().map(|n| n.name.as_str()).collect();
        return Err(Fatal(match network {
            Some(wanted) => format!(
                "no network `{wanted}` in {}; it has: {}",
                path.display(),
                names.join(", ")
            ),
            None => format!("{} defines no network", path.display()),
        }));
    }
    let mut out = String::new();
    let mut json = Vec::new();
    for network in networks {
        let summary = archc::summary::summarize(network);
        match format {
            Format::Human => out.push_str(&summary.table(depth.unwrap_or(usize::MAX))),
            Format::Json => json.push(serde_json::json!({
                "network": summary.network,
                "input": summary.input.dims(),
                "input_sizes": summary.input_sizes.as_ref().map(|sizes| serde_json::json!({
                    "height": { "min": sizes.height.min, "max": sizes.height.max },
                    "width": { "min": sizes.width.min, "max": sizes.width.max },
                    "description": sizes.describe(),
                    "smaller": sizes.limit_below().map(ToString::to_string),
                    "larger": sizes.limit_above().map(ToString::to_string),
                })),
                "params_total": summary.params_total,
                "params_inference": summary.params_inference,
                "macs_inference": summary.macs_inference,
                "macs_training": summary.macs_training,
                "rows": summary.rows.iter().filter(|r| r.depth <= depth.unwrap_or(usize::MAX)).map(|r| serde_json::json!({
                    "path": r.path, "kind": r.kind, "output": r.output.dims(), "params": r.params,
                    "macs": r.macs, "depth": r.depth, "training_only": r.training_only,
                })).collect::<Vec<_>>(),
            })),
        }
    }
    if let Format::Json = format {
        out = serde_json::to_string_pretty(&json).expect("JSON values serialise");
        out.push('\n');
    }
    let _ = std::io::stdout().write_all(out.as_bytes());
    Ok(ExitCode::SUCCESS)
}

fn run_explain(code: Option<&str>, list: bool) -> Result<ExitCode, Fatal> {
    if list || code.is_none() {
        for code in Code::ALL {
            println!("{code}  {}", code.title());
        }
        return Ok(ExitCode::SUCCESS);
    }
    let text = code.unwrap_or_default();
    match Code::parse(text) {
        Some(code) => {
            println!(
                "{code}: {}\n\n{}",
                code.title(),
                archc::explain::explanation(code)
            );
            Ok(ExitCode::SUCCESS)
        }
        None => Err(Fatal(format!(
            "unknown code `{text}`; `archc explain --list` shows them all"
        ))),
    }
}

fn run_emit(path: &Path, use_rustfmt: bool, color: bool) -> Result<ExitCode, Fatal> {
    let source = read_source(path)?;
    let name = display_name(path);
    match archc::codegen::emit_source(SourceKind::from_path(&name), &name, &source) {
        // Only a header: a script would take that for generated code. As for `summary`, a usage error.
        Ok(_)
            if compile(SourceKind::from_path(&name), &source)
                .networks
                .is_empty() =>
        {
            Err(Fatal(format!(
                "{name} defines no network; there is nothing to emit"
            )))
        }
        Ok(code) => {
            let code = if use_rustfmt {
                rustfmt(&code).unwrap_or(code)
            } else {
                code
            };
            let _ = std::io::stdout().write_all(code.as_bytes());
            Ok(ExitCode::SUCCESS)
        }
        Err(diagnostics) => {
            eprint!(
                "{}",
                archc::render::render(&name, &source, &diagnostics, color)
            );
            Ok(ExitCode::from(1))
        }
    }
}

/// Formats Rust source with `rustfmt` (edition 2021), if it is installed and succeeds.
fn rustfmt(code: &str) -> Option<String> {
    use std::process::{Command, Stdio};
    let mut child = Command::new("rustfmt")
        .args(["--edition", "2021", "--emit", "stdout"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut stdin = child.stdin.take()?;
    let input = code.to_string();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output().ok()?;
    writer.join().ok()?.ok()?;
    (output.status.success() && !output.stdout.is_empty())
        .then(|| String::from_utf8(output.stdout).ok())?
}

fn run_graph(
    path: &Path,
    format: GraphFormat,
    collapse: bool,
    network: Option<String>,
    allow_errors: bool,
    color: bool,
) -> Result<ExitCode, Fatal> {
    let source = read_source(path)?;
    let name = display_name(path);
    let report = |diagnostics: &[Diagnostic]| {
        eprint!(
            "{}",
            archc::render::render(&name, &source, diagnostics, color)
        );
    };
    let file = match archc::parse_source(SourceKind::from_path(&name), &source) {
        Ok(file) => file,
        Err(diagnostics) => {
            report(&diagnostics);
            eprintln!("{name}: syntax error; nothing to draw");
            return Ok(ExitCode::from(1));
        }
    };
    let (checked, recovered) = archc::check::check_file_recovering(&file);
    if checked.has_errors() && !allow_errors {
        report(&checked.diagnostics);
        let errors = checked.diagnostics.iter().filter(|d| d.is_error()).count();
        eprintln!("{name}: {errors} error(s); fix them first, or draw them with --allow-errors");
        return Ok(ExitCode::from(1));
    }
    if !checked.diagnostics.is_empty() {
        report(&checked.diagnostics);
    }
    let names: Vec<&str> = file
        .items
        .iter()
        .filter(|d| d.kind == archc::ast::DefinitionKind::Network)
        .map(|d| d.name.name.as_str())
        .collect();
    match &network {
        Some(wanted) if !names.contains(&wanted.as_str()) => {
            return Err(Fatal(format!(
                "no network `{wanted}` in {}; it has: {}",
                path.display(),
                names.join(", ")
            )))
        }
        None if names.is_empty() => {
            return Err(Fatal(format!("{} defines no network", path.display())))
        }
        _ => {}
    }
    let options = archc::graph::GraphOptions { collapse, network };
    let graph = archc::graph::build(&file, &recovered, &checked.diagnostics, &source, &options);
    let text = match format {
        GraphFormat::Svg => graph.to_svg(),
        GraphFormat::Dot => graph.to_dot(),
    };
    let _ = std::io::stdout().write_all(text.as_bytes());
    Ok(ExitCode::SUCCESS)
}

fn run_fmt(files: &[PathBuf], check: bool, color: bool) -> Result<ExitCode, Fatal> {
    let mut io_failed = false;
    let mut failed = false;
    for path in files {
        let name = display_name(path);
        if SourceKind::from_path(&name) == SourceKind::Yaml {
            eprintln!(
                "error: {name}: `archc fmt` formats `.arch` files only; YAML is left as written"
            );
            io_failed = true;
            continue;
        }
        let source = match read_source(path) {
            Ok(source) => source,
            Err(Fatal(message)) => {
                eprintln!("error: {message}");
                io_failed = true;
                continue;
            }
        };
        let formatted = match archc::fmt::format_source(&source) {
            Ok(formatted) => formatted,
            Err(diagnostics) => {
                eprint!(
                    "{}",
                    archc::render::render(&name, &source, &diagnostics, color)
                );
                eprintln!("{name}: not formatted (syntax error); left as it is");
                failed = true;
                continue;
            }
        };
        if formatted == source {
            continue;
        }
        if check {
            failed = true;
            let diff = similar::TextDiff::from_lines(&source, &formatted);
            let _ = write!(
                std::io::stdout(),
                "{}",
                diff.unified_diff().context_radius(2).header(
                    &format!("{name} (as written)"),
                    &format!("{name} (formatted)")
                )
            );
        } else if let Err(error) = std::fs::write(path, formatted.as_bytes()) {
            eprintln!("error: {name}: cannot write: {error}");
            io_failed = true;
        }
    }
    Ok(exit_code(io_failed, failed))
}

/// Exit 0 after the client's `shutdown` and `exit`, 1 when it exits without `shutdown` (as the protocol asks).
#[cfg(feature = "lsp")]
fn run_lsp() -> Result<ExitCode, Fatal> {
    match archc::lsp::run_stdio() {
        Ok(true) => Ok(ExitCode::SUCCESS),
        Ok(false) => Ok(ExitCode::from(1)),
        Err(error) => Err(Fatal(format!("lsp: {error}"))),
    }
}
