use clap::Parser;

fn main() -> std::process::ExitCode {
    upgrade_gate::cli::run(upgrade_gate::cli::Cli::parse())
}
