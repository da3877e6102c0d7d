//! The `quantmix` command: arguments are parsed into validated jobs
//! ([`cli`]), which the library runs; this binary only prints, draws
//! progress and maps errors to exit codes.

mod cli;

fn main() {
    std::process::exit(cli::main());
}
