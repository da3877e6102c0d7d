//! Command-line interface: arguments are parsed (clap), validated into a
//! plan, then run. One module per subcommand.
//!
//! Exit codes: 0 success, 1 error, 2 usage error, 128 + the signal number
//! when interrupted (130 Ctrl-C / SIGINT, 143 SIGTERM, 129 SIGHUP).

mod alloc;
mod bench;
mod convert;
mod eval;
mod export_hf;
mod imatrix;
mod inspect;
mod interrupt;
mod plan;
mod progress;
mod quantize;
mod recipe;
mod sensitivity;

use clap::{Parser, Subcommand};
use quantmix::job::{Ctx, Interrupted};

/// quantmix: hybrid per-layer GGUF quantization.
#[derive(Parser, Debug)]
#[command(name = "quantmix", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Quantize a model to a (hybrid) GGUF with a recipe, a preset or one type.
    Quantize(quantize::Args),
    /// Show a GGUF's metadata, tensors (shape, type, bytes, bits per weight) and totals.
    Inspect(inspect::Args),
    /// Write the explicit recipe that reproduces a llama-quantize preset for a model.
    Recipe(recipe::Args),
    /// Rewrite a GGUF losslessly (same metadata, byte-identical tensors).
    Convert(convert::Args),
    /// Export a llama / qwen2 GGUF as a Hugging Face directory (config.json, model.safetensors, tokenizer).
    ExportHf(export_hf::ExportHfArgs),
    /// Choose a type per tensor under a size budget from `quantmix sensitivity`'s measurements.
    Plan(plan::Args),
    /// Size, bits per weight, perplexity, KLD against a reference and tokens/s of GGUF files, side by side.
    Eval(eval::Args),
    /// Benchmark the kernels (quantize, dequantize, vec_dot, matmul) and whole models (also against llama-bench).
    Bench(bench::Args),
    /// Collect an importance matrix on calibration text, as llama-imatrix does (GGUF imatrix format).
    Imatrix(imatrix::Args),
    /// Measure each tensor's damage (ΔKLD) at each candidate type on calibration text.
    Sensitivity(sensitivity::Args),
}

/// Entry point of the binary; returns the process exit code.
pub fn main() -> i32 {
    alloc::keep_freed_memory();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    // Commands that poll the cancellation token stop cleanly on a first
    // signal; the others clean up and exit at once.
    let cancellable = matches!(
        cli.command,
        Command::Quantize(_)
            | Command::Convert(_)
            | Command::ExportHf(_)
            | Command::Eval(_)
            | Command::Imatrix(_)
            | Command::Sensitivity(_)
    );
    let cancel = interrupt::install(cancellable);
    let result = match cli.command {
        Command::Quantize(a) => quantize::run(a, &cancel),
        Command::Inspect(a) => inspect::run(a),
        Command::Plan(a) => plan::run(a),
        Command::Recipe(a) => recipe::run(a),
        Command::Convert(a) => {
            let bar = progress::Bar::new(a.quiet);
            convert::run(a, Ctx { cancel: &cancel, progress: &bar, threads: 0 })
        }
        Command::ExportHf(a) => export_hf::run(&a, &cancel),
        Command::Bench(a) => bench::run(a),
        Command::Eval(a) => eval::run(a, &cancel),
        Command::Imatrix(a) => imatrix::run(a, &cancel),
        Command::Sensitivity(a) => sensitivity::run(a, &cancel),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            let signal = interrupt::exit_code();
            if signal.is_some() || e.chain().any(|c| c.is::<Interrupted>()) {
                quantmix::fsutil::remove_pending();
                eprintln!("quantmix: interrupted; no output was written");
                return signal.unwrap_or(130);
            }
            eprintln!("quantmix: error: {e}");
            for cause in causes_to_print(&e) {
                eprintln!("  caused by: {cause}");
            }
            1
        }
    }
}

/// The causes of `e` worth printing under it: a cause whose text the line
/// above already contains (errors that format their source into their own
/// message) is skipped.
fn causes_to_print(e: &anyhow::Error) -> Vec<String> {
    let mut shown = e.to_string();
    let mut out = Vec::new();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !shown.contains(&text) {
            out.push(text.clone());
        }
        shown = text;
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn causes_repeated_by_their_parent_are_not_printed_twice() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory");
        let e = anyhow::Error::new(quantmix::gguf::GgufError::io("/x.gguf", io)).context("inspecting /x.gguf");
        let causes = super::causes_to_print(&e);
        // "/x.gguf: I/O error: No such file…" once; its kind and the io error are in that line.
        assert_eq!(causes, ["/x.gguf: I/O error: No such file or directory"]);
        let e = anyhow::anyhow!("inner detail").context("outer");
        assert_eq!(super::causes_to_print(&e), ["inner detail"]);
    }
}
