//! The `compliance-proxy` binary; everything lives in the library.

fn main() -> std::process::ExitCode {
    compliance_proxy::cli::main()
}
