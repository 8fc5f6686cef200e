//! The `actor-token-operator` command: `run` the operator, or print the `crd`s or the
//! `admission-policies`.

use std::net::SocketAddr;

use actor_token_operator::{
    admission, api,
    governance::{self, api_url::ApiUrlPolicy},
    runtime::{
        self, LogFormat, Settings,
        leader::{LeaseSettings, default_identity},
    },
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
    Run(Box<RunArgs>),
    /// Print every CustomResourceDefinition as YAML.
    Crd,
    /// Print the admission policies (and their bindings) as the chart's template holds them.
    AdmissionPolicies,
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
    #[arg(long, env = "ATO_CONCURRENCY", default_value_t = 16)]
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

    /// The Secret (in --cluster-instance-namespace) holding the key that seals the operator's
    /// token records; created if missing.
    #[arg(
        long,
        env = "ATO_TOKEN_SEAL_SECRET",
        default_value = "actor-token-operator-token-seal"
    )]
    token_seal_secret: String,

    /// After SIGTERM, how long in-flight reconciles may take before they are stopped, in
    /// seconds; keep it under the pod's terminationGracePeriodSeconds.
    #[arg(long, env = "ATO_SHUTDOWN_TIMEOUT_SECONDS", default_value_t = 30)]
    shutdown_timeout_seconds: u64,

    /// Reconcile only while holding a Lease, so that of several replicas one works and the
    /// others stand by. The identity is $POD_NAME, or <hostname>-<pid>.
    #[arg(long, env = "ATO_LEADER_ELECTION", value_parser = clap::builder::BoolishValueParser::new())]
    leader_election: bool,

    /// The Lease's namespace; default: --cluster-instance-namespace.
    #[arg(long, env = "ATO_LEADER_ELECTION_NAMESPACE")]
    leader_election_namespace: Option<String>,

    /// The Lease's name.
    #[arg(
        long,
        env = "ATO_LEADER_ELECTION_LEASE",
        default_value = "actor-token-operator"
    )]
    leader_election_lease: String,

    /// How long a lease lasts without renewal: a standby takes over at most this long after
    /// the leader dies. The leader renews every 2/15 of it and stops if it could not renew
    /// for 2/3 of it.
    #[arg(
        long,
        env = "ATO_LEADER_ELECTION_LEASE_SECONDS",
        default_value_t = 15,
        value_parser = clap::value_parser!(u64).range(3..=3600)
    )]
    leader_election_lease_seconds: u64,

    /// The hosts the operator may send a Clerk secret key to (an instance's spec.apiUrl),
    /// comma-separated.
    #[arg(
        long,
        env = "ATO_CLERK_API_HOSTS",
        value_delimiter = ',',
        default_value = governance::api_url::CLERK_API_HOST
    )]
    clerk_api_hosts: Vec<String>,

    /// Allow plain http to those hosts: for tests and demos against a local simulator only.
    #[arg(
        long,
        env = "ATO_ALLOW_INSECURE_CLERK_HTTP",
        value_parser = clap::builder::BoolishValueParser::new(),
        overrides_with = "allow_insecure_clerk_http"
    )]
    allow_insecure_clerk_http: bool,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd => {
            print!("{}", api::crds_yaml());
            Ok(())
        }
        Command::AdmissionPolicies => {
            print!("{}", admission::chart_template());
            Ok(())
        }
        Command::Run(args) => {
            let args = *args;
            runtime::init_logging(args.log_format);
            let leader_election = args.leader_election.then(|| LeaseSettings {
                namespace: args
                    .leader_election_namespace
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| args.cluster_instance_namespace.clone()),
                name: args.leader_election_lease,
                identity: default_identity(),
                duration: std::time::Duration::from_secs(args.leader_election_lease_seconds),
            });
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
                leader_election,
                api_urls: ApiUrlPolicy {
                    hosts: args
                        .clerk_api_hosts
                        .into_iter()
                        .filter(|h| !h.is_empty())
                        .collect(),
                    allow_http: args.allow_insecure_clerk_http,
                },
                seal_secret: args.token_seal_secret,
                shutdown_timeout: std::time::Duration::from_secs(args.shutdown_timeout_seconds),
            };
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?
                .block_on(runtime::run(settings))
        }
    }
}
