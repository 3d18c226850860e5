fn main() {
    std::process::exit(polysum::cli::main());
}
