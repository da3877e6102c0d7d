//! Command-line interface: arguments are parsed, validated into a plan, then run.

/// Entry point of the binary; returns the process exit code.
pub fn main() -> i32 {
    eprintln!("quantmix: not yet wired");
    2
}
