use clap::Parser;

fn main() -> std::process::ExitCode {
    upgrade_gate::commands::run(upgrade_gate::commands::Cli::parse())
}
