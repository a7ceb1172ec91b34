fn main() -> std::process::ExitCode {
    amiplan::cli::main()
}
