//! The `actor-token-operator` command: `run` the operator, or print the `crd`s.

use std::net::SocketAddr;

use actor_token_operator::{
    api,
    runtime::{self, LogFormat, Settings},
};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    version,
    about = "Issues Clerk actor tokens for ActorTokenRequests and revokes them on delete and at expiry"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the operator. The cluster is found the standard way: in-cluster, or $KUBECONFIG,
    /// or ~/.kube/config.
    Run(RunArgs),
    /// Print every CustomResourceDefinition as YAML.
    Crd,
}

#[derive(clap::Args)]
struct RunArgs {
    /// Namespaces whose ActorTokenRequests to serve, comma-separated; all when empty.
    #[arg(long, env = "ATO_NAMESPACES", value_delimiter = ',')]
    namespaces: Vec<String>,

    /// The namespace holding ClusterClerkInstances' key Secrets: the operator's own.
    #[arg(
        long,
        env = "ATO_CLUSTER_INSTANCE_NAMESPACE",
        default_value = "actor-token-operator"
    )]
    cluster_instance_namespace: String,

    /// How many requests are reconciled at once.
    #[arg(long, env = "ATO_CONCURRENCY", default_value_t = 4)]
    concurrency: u16,

    /// Log format.
    #[arg(long, env = "ATO_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,

    /// Where to serve /metrics, /healthz and /readyz.
    #[arg(long, env = "ATO_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    metrics_addr: SocketAddr,

    /// Timeout of one call to Clerk, in seconds.
    #[arg(long, env = "ATO_CLERK_TIMEOUT_SECONDS", default_value_t = 10)]
    clerk_timeout_seconds: u64,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd => {
            print!("{}", api::crds_yaml());
            Ok(())
        }
        Command::Run(args) => {
            runtime::init_logging(args.log_format);
            let settings = Settings {
                namespaces: args
                    .namespaces
                    .into_iter()
                    .filter(|n| !n.is_empty())
                    .collect(),
                cluster_instance_namespace: args.cluster_instance_namespace,
                concurrency: args.concurrency.max(1),
                metrics_addr: args.metrics_addr,
                clerk_timeout: std::time::Duration::from_secs(args.clerk_timeout_seconds.max(1)),
            };
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?
                .block_on(runtime::run(settings))
        }
    }
}
