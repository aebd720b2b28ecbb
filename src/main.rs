//! Command line: `alert-router [serve] [--config FILE]`, `alert-router check-config FILE…`,
//! `alert-router --version`.

use alert_router::config::Config;
use alert_router::ConfigSource;
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

// mimalloc: the store writer and the HTTP workers allocate heavily (payload maps, sled
// pages); glibc malloc spent about a quarter of the ingest CPU in a profile.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "alert-router",
    version,
    about = "Durable, deduplicating, rate-limited delivery for Alertmanager notifications"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Configuration file (default: the embedded config/alert-router.yml).
    #[arg(long, short = 'c', global = true, env = "ALERT_ROUTER_CONFIG")]
    config: Option<PathBuf>,
    /// Log format.
    #[arg(long, value_enum, default_value = "text", global = true)]
    log_format: LogFormat,
    /// Log level or filter (overrides RUST_LOG), e.g. `info`, `alert_router=debug`.
    #[arg(long, global = true)]
    log_level: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the router (the default).
    Serve,
    /// Validate configuration files; exit non-zero on the first invalid one.
    CheckConfig {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn init_logging(format: LogFormat, level: Option<&str>) {
    use tracing_subscriber::EnvFilter;
    let filter = match level {
        Some(l) => EnvFilter::new(l),
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    // colours only on a terminal: not in files, journald or container logs
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Load each file, build every integration, and render every integration's templates
/// against a sample group (one firing, one resolved alert): a template that fails to
/// render fails the check, naming the integration.
fn check_config(files: &[PathBuf]) -> ExitCode {
    let mut failed = false;
    for f in files {
        let error = |message: String| alert_router::config::ConfigError {
            file: f.display().to_string(),
            line: None,
            column: None,
            message,
        };
        match Config::load_file(f).and_then(|c| {
            let templates = std::sync::Arc::new(
                alert_router::template::Templates::from_config(&c).map_err(error)?,
            );
            let integrations =
                alert_router::notify::build_notifiers(&c, &templates).map_err(error)?;
            if let Some(tls) = &c.tls {
                alert_router::http::listener::Tls::load(tls).map_err(|e| error(e.to_string()))?;
            }
            let t = alert_router::alert::now();
            for i in integrations {
                let (receiver, rest) = i.key.rsplit_once('/').unwrap_or((&i.key, ""));
                let alerts = alert_router::notify::sample_alerts(receiver, t);
                let n = alert_router::notify::preview(
                    (receiver, i.notifier.kind(), 0),
                    &alerts,
                    &c.external_url(),
                    t,
                );
                if let Err(e) = i.notifier.render(&n) {
                    return Err(error(format!("{receiver}/{rest}: rendering a sample: {e}")));
                }
            }
            Ok(())
        }) {
            Ok(()) => println!("Checking '{}'  SUCCESS", f.display()),
            Err(e) => {
                println!("Checking '{}'  FAILED: {e}", f.display());
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // HTTP and SMTP clients need a TLS crypto provider, also when check-config builds them.
    let _ = rustls::crypto::ring::default_provider().install_default();
    if let Some(Command::CheckConfig { files }) = &cli.command {
        return check_config(files);
    }
    init_logging(cli.log_format, cli.log_level.as_deref());
    let source = match &cli.config {
        Some(p) => ConfigSource::File(p.clone()),
        None => ConfigSource::Embedded,
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("alert-router: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(alert_router::run(source, shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("alert-router: {e}");
            ExitCode::FAILURE
        }
    }
}
