//! `clerk-sim`: runs the Clerk Backend API simulator until SIGTERM or SIGINT.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use clerk_sim::{DEFAULT_SECRET_KEY, Faults, Latency, RateLimit, SimConfig};

/// A simulator of Clerk's Backend API (actor tokens), for tests.
///
/// Prints `clerk-sim listening on http://HOST:PORT` on stdout once it is serving; the API is
/// under /v1, the test control surface under /__sim.
#[derive(Debug, Parser)]
#[command(name = "clerk-sim", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "CLERK_SIM_ADDR", default_value = "127.0.0.1:0")]
    addr: SocketAddr,

    /// Port to listen on (overrides the port of --addr; 0 picks a free one).
    #[arg(long, env = "CLERK_SIM_PORT")]
    port: Option<u16>,

    /// Secret key to accept (repeat for more; env: comma-separated). Without any, the built-in
    /// development key `sk_test_clerk_sim_default_key` is accepted.
    #[arg(
        long = "secret-key",
        env = "CLERK_SIM_SECRET_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    secret_keys: Vec<String>,

    /// Added latency in milliseconds: `N` (fixed) or `MIN..MAX` (uniform, inclusive).
    #[arg(long, env = "CLERK_SIM_LATENCY_MS", value_parser = parse_latency)]
    latency_ms: Option<Latency>,

    /// Share (0.0-1.0) of API requests answered 500/502/503.
    #[arg(long, env = "CLERK_SIM_SERVER_ERROR_SHARE", default_value_t = 0.0)]
    server_error_share: f64,

    /// Share (0.0-1.0) of API requests answered 429 with Retry-After.
    #[arg(long, env = "CLERK_SIM_TOO_MANY_REQUESTS_SHARE", default_value_t = 0.0)]
    too_many_requests_share: f64,

    /// Retry-After (seconds) on --too-many-requests-share answers.
    #[arg(long, env = "CLERK_SIM_RETRY_AFTER_SECONDS", default_value_t = 1)]
    retry_after_seconds: u64,

    /// Per-key rate limit: `N/SECONDS` (e.g. 100/10), or `clerk` for Clerk's own limits
    /// (100 per 10 s for sk_test_ keys, 1000 per 10 s for others).
    #[arg(long, env = "CLERK_SIM_RATE_LIMIT", value_parser = parse_rate_limit)]
    rate_limit: Option<RateLimit>,

    /// Share (0.0-1.0) of creates where the token is created but the connection is dropped
    /// before any answer.
    #[arg(long, env = "CLERK_SIM_DROP_CREATE_SHARE", default_value_t = 0.0)]
    drop_create_share: f64,

    /// A user ID that creates are refused for (422), as Clerk refuses an unknown user. Repeatable.
    #[arg(
        long = "rejected-user",
        env = "CLERK_SIM_REJECTED_USERS",
        value_delimiter = ','
    )]
    rejected_user: Vec<String>,

    /// Seed for every random choice (faults, IDs, tokens).
    #[arg(long, env = "CLERK_SIM_SEED")]
    seed: Option<u64>,
}

fn parse_latency(s: &str) -> Result<Latency, String> {
    let ms = |v: &str| v.trim().parse::<u64>().map_err(|e| format!("{v:?}: {e}"));
    let latency = match s.split_once("..") {
        Some((min, max)) => Latency {
            min_ms: ms(min)?,
            max_ms: ms(max)?,
        },
        None => Latency {
            min_ms: ms(s)?,
            max_ms: ms(s)?,
        },
    };
    if latency.min_ms > latency.max_ms {
        return Err(format!("{s:?}: MIN is above MAX"));
    }
    Ok(latency)
}

fn parse_rate_limit(s: &str) -> Result<RateLimit, String> {
    if s.eq_ignore_ascii_case("clerk") {
        return Ok(RateLimit::Clerk);
    }
    let (requests, seconds) = s.split_once('/').ok_or("expected N/SECONDS or clerk")?;
    let requests = requests
        .trim()
        .parse()
        .map_err(|e| format!("{requests:?}: {e}"))?;
    let seconds: u64 = seconds
        .trim()
        .parse()
        .map_err(|e| format!("{seconds:?}: {e}"))?;
    if seconds == 0 {
        return Err("the window must be at least 1 second".to_owned());
    }
    Ok(RateLimit::per_key(requests, Duration::from_secs(seconds)))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = Args::parse();
    let stop = match stop_signal() {
        Ok(stop) => stop,
        Err(e) => {
            eprintln!("clerk-sim: cannot handle signals: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };

    let mut addr = args.addr;
    if let Some(port) = args.port {
        addr.set_port(port);
    }
    let mut secret_keys: Vec<String> = args
        .secret_keys
        .into_iter()
        .map(|k| k.trim().to_owned())
        .filter(|k| !k.is_empty())
        .collect();
    if secret_keys.is_empty() {
        tracing::info!("no --secret-key given; accepting the built-in development key");
        secret_keys.push(DEFAULT_SECRET_KEY.to_owned());
    }
    let faults = Faults {
        latency: args.latency_ms,
        server_error_share: args.server_error_share,
        too_many_requests_share: args.too_many_requests_share,
        retry_after_seconds: args.retry_after_seconds,
        rate_limit: args.rate_limit,
        drop_create_share: args.drop_create_share,
        rejected_users: args.rejected_user,
    };
    if let Err(e) = faults.validate() {
        eprintln!("clerk-sim: {e}");
        return std::process::ExitCode::from(2);
    }
    tracing::info!(keys = secret_keys.len(), ?faults, seed = ?args.seed, "starting");

    let sim = match clerk_sim::start(SimConfig {
        secret_keys,
        faults,
        addr,
        seed: args.seed,
    })
    .await
    {
        Ok(sim) => sim,
        Err(e) => {
            eprintln!("clerk-sim: cannot listen on {addr}: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "clerk-sim listening on {}", sim.base_url());
    let _ = stdout.flush();
    drop(stdout);

    stop.await;
    tracing::info!("stopping");
    sim.shutdown().await;
    std::process::ExitCode::SUCCESS
}

/// Installs the SIGTERM/SIGINT handlers at once (so a signal that comes right after the
/// start-up line is not fatal) and returns a future that completes on the first of them.
fn stop_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}
