//! `relais-policy-service`: the Relais policy service as a process of its own
//! (`docs/policy-service.md`).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use relais_appservice::standalone::{self, config::ServiceConfig};

/// The Relais policy service, beside a homeserver.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// The configuration file.
    #[arg(long, short, env = "RELAIS_POLICY_SERVICE_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the service (the default).
    Serve,
    /// Prints the application service registration file for the homeserver.
    Registration,
    /// Checks the configuration and exits.
    CheckConfig,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let path = cli.config.context("--config (or RELAIS_POLICY_SERVICE_CONFIG) is required")?;
    let config =
        ServiceConfig::load(&path).with_context(|| format!("configuration {}", path.display()))?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Registration => {
            print!("{}", config.registration_yaml());
            Ok(())
        }
        Command::CheckConfig => {
            println!("configuration {} is valid", path.display());
            Ok(())
        }
        Command::Serve => {
            // Colours only on a terminal: log files and journald get plain text.
            let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
            tracing_subscriber::fmt()
                .with_writer(std::io::stderr)
                .with_ansi(ansi)
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| "info".into()),
                )
                .init();
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the runtime")?;
            runtime.block_on(standalone::run(config)).context("relais-policy-service")
        }
    }
}
