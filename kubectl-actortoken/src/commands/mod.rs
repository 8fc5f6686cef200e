//! The commands: each reads and writes through the API server as the user, and leaves the
//! deciding to the pure modules.

mod completion;
mod decide;
mod describe;
mod list;
mod request;
mod revoke;
mod url;
mod whoami;

use crate::{
    cli::{Cli, Command},
    cluster::Cluster,
    error::Error,
};

pub async fn run(cli: Cli) -> Result<(), Error> {
    if let Command::Completion(args) = &cli.command {
        return completion::run(args.shell);
    }
    let cluster = Cluster::connect(&cli.global).await?;
    match cli.command {
        Command::Request(args) => request::run(&cluster, args).await,
        Command::List(args) => list::run(&cluster, args).await,
        Command::Describe(args) => describe::run(&cluster, &args.name).await,
        Command::Approve(args) => {
            decide::run(
                &cluster,
                &args.name,
                decide::Kind::Approved,
                args.reason.as_deref(),
            )
            .await
        }
        Command::Deny(args) => {
            decide::run(
                &cluster,
                &args.name,
                decide::Kind::Denied,
                Some(&args.reason),
            )
            .await
        }
        Command::Url(args) => url::run(&cluster, &args.name, args.open).await,
        Command::Revoke(args) => revoke::run(&cluster, &args.name, args.timeout).await,
        Command::Whoami => whoami::run(&cluster).await,
        Command::Completion(_) => unreachable!("handled above"),
    }
}

/// Gets a request, or says plainly that there is none.
pub async fn get_request(
    cluster: &Cluster,
    name: &str,
) -> Result<actor_token_operator::api::ActorTokenRequest, Error> {
    match cluster.requests().get_opt(name).await {
        Ok(Some(r)) => Ok(r),
        Ok(None) => Err(Error::NotFound(format!(
            "actortokenrequest {} not found",
            cluster.named(name)
        ))),
        Err(e) => Err(crate::error::from_kube(
            format!("reading actortokenrequest {}", cluster.named(name)),
            e,
        )),
    }
}
