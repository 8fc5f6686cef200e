//! `describe NAME`: the request and its events, told as one story.

use k8s_openapi::{api::events::v1::Event, jiff::Timestamp};
use kube::{Api, api::ListParams};

use crate::{
    cluster::Cluster,
    error::{Error, is_forbidden},
    story,
};

pub async fn run(cluster: &Cluster, name: &str) -> Result<(), Error> {
    let request = super::get_request(cluster, name).await?;
    let events = Api::<Event>::namespaced(cluster.client.clone(), &cluster.namespace);
    let uid = request.metadata.uid.clone().unwrap_or_default();
    let selector = format!("regarding.uid={uid}");
    // Events are a courtesy here: without RBAC to read them, the rest of the story still
    // stands.
    let events = match events.list(&ListParams::default().fields(&selector)).await {
        Ok(list) => list.items,
        Err(e) if is_forbidden(&e) => {
            eprintln!(
                "note: you may not list events in namespace {}; the story is told without them",
                cluster.namespace
            );
            Vec::new()
        }
        Err(e) => {
            eprintln!("note: could not read events: {e}");
            Vec::new()
        }
    };
    print!("{}", story::tell(&request, &events, Timestamp::now()));
    Ok(())
}
