//! The `relais` binary: `serve`, `check-config`, `create-user`.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use relais_homeserver::{api::route_table, config::Config, server, service::Services};

#[derive(Parser)]
#[command(name = "relais", version, about = "Relais Matrix homeserver")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the homeserver.
    Serve {
        /// Configuration file (TOML); embedded defaults and RELAIS_* variables apply without it.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Checks the configuration and prints the effective settings.
    CheckConfig {
        /// Configuration file (TOML).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Prints every client and federation API route as JSON lines: method, path and auth scheme.
    Routes,
    /// Creates a local user (the server must not be running on the same database).
    CreateUser {
        /// Configuration file (TOML).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// The localpart of the user ID.
        username: String,
        /// The password; read from RELAIS_PASSWORD if not given.
        #[arg(long, env = "RELAIS_PASSWORD", hide_env_values = true)]
        password: String,
        /// Make the user a server administrator.
        #[arg(long)]
        admin: bool,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config } => {
            let config = Config::load(config.as_deref())?;
            init_logging(&config.log);
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.enable_all().max_blocking_threads(config.runtime.blocking_threads.max(1));
            if config.runtime.worker_threads > 0 {
                builder.worker_threads(config.runtime.worker_threads);
            }
            let runtime = builder.build()?;
            runtime.block_on(server::serve(config))?;
        }
        Command::CheckConfig { config } => {
            let config = Config::load(config.as_deref())?;
            println!("{}", toml::to_string_pretty(&config).context("printing the configuration")?);
            println!("# configuration is valid");
        }
        Command::Routes => {
            let routes = || {
                (
                    relais_homeserver::api::client::routes(),
                    relais_homeserver::api::federation::routes(),
                )
            };
            for route in route_table::route_table(routes) {
                println!("{}", serde_json::to_string(&route).context("printing a route")?);
            }
        }
        Command::CreateUser { config, username, password, admin } => {
            let config = Config::load(config.as_deref())?;
            init_logging(&config.log);
            let services = Services::open(std::sync::Arc::new(config))?;
            let user_id = services.accounts.user_id(&username.to_lowercase())?;
            services.accounts.register(&user_id, Some(&password), admin)?;
            println!("created {user_id}{}", if admin { " (admin)" } else { "" });
        }
    }
    Ok(())
}

fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RELAIS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter));
    // Colours only on a terminal: log files and journald get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .init();
}
