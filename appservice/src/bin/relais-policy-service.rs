//! `relais-policy-service`: the Relais policy service as a process of its own
//! (`docs/policy-service.md`).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use relais_appservice::standalone::{self, config::ServiceConfig, operator};

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
    /// Prints the application service registration file for a homeserver.
    Registration {
        /// Which homeserver, by server name (default: the first one).
        #[arg(long)]
        server: Option<String>,
    },
    /// Checks the configuration and exits.
    CheckConfig,
    /// Records a user in the directory (tier, unit; a guest's sponsor and end), as a server admin
    /// would, in front of a homeserver that does not write the directory itself (Synapse).
    Member {
        /// The user ID.
        user: String,
        /// `agent`, `public` or `guest`.
        #[arg(long)]
        tier: relais_policy::Tier,
        /// The organisation unit.
        #[arg(long)]
        unit: String,
        /// A guest's sponsor.
        #[arg(long)]
        sponsor: Option<String>,
        /// A guest's account ends this many days from now.
        #[arg(long)]
        expires_in_days: Option<u64>,
        /// Why, for the audit log.
        #[arg(long, default_value = "")]
        reason: String,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let path = cli.config.context("--config (or RELAIS_POLICY_SERVICE_CONFIG) is required")?;
    let config =
        ServiceConfig::load(&path).with_context(|| format!("configuration {}", path.display()))?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Registration { server } => {
            let homeservers = config.all_homeservers();
            let homeserver = match &server {
                Some(name) => homeservers.iter().find(|h| &h.server_name == name),
                None => homeservers.first(),
            }
            .with_context(|| format!("no homeserver {server:?} in the configuration"))?;
            print!("{}", config.registration_yaml(homeserver));
            Ok(())
        }
        Command::CheckConfig => {
            println!("configuration {} is valid", path.display());
            Ok(())
        }
        Command::Member { user, tier, unit, sponsor, expires_in_days, reason } => {
            let expires_at_ms = expires_in_days.map(|days| {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
                now.saturating_add(days.saturating_mul(24 * 60 * 60 * 1000))
            });
            let member = operator::NewMember { user, tier, unit, sponsor, expires_at_ms, reason };
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the runtime")?;
            runtime.block_on(operator::record_member(&config, member)).context("member")?;
            println!("recorded");
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
