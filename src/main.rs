fn main() {
    std::process::exit(quantmix::cli::main());
}
