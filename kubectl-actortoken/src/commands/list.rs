//! `list`: the requests of a namespace (or all, `-A`) in one table.

use actor_token_operator::api::ActorTokenRequest;
use k8s_openapi::jiff::Timestamp;
use kube::{Api, api::ListParams};

use crate::{
    cli::ListArgs,
    cluster::Cluster,
    error::{Error, from_kube},
    rows,
};

pub async fn run(cluster: &Cluster, args: ListArgs) -> Result<(), Error> {
    let (api, where_) = if args.all_namespaces {
        (
            Api::<ActorTokenRequest>::all(cluster.client.clone()),
            "any namespace".to_string(),
        )
    } else {
        (
            cluster.requests(),
            format!("namespace {}", cluster.namespace),
        )
    };
    let mut requests = api
        .list(&ListParams::default())
        .await
        .map_err(|e| from_kube(format!("listing actortokenrequests in {where_}"), e))?
        .items;
    if requests.is_empty() {
        eprintln!("No actortokenrequests in {where_}.");
        return Ok(());
    }
    requests.sort_by(|a, b| {
        (&a.metadata.namespace, &a.metadata.name).cmp(&(&b.metadata.namespace, &b.metadata.name))
    });
    print!(
        "{}",
        rows::render(&requests, args.all_namespaces, Timestamp::now())
    );
    Ok(())
}
