//! The test bed itself works: the local control plane serves CRDs, objects and Secrets, and
//! its garbage collector really deletes what an owner leaves behind.

mod support;

use std::time::Duration;

use k8s_openapi::{
    api::core::v1::{ConfigMap, Secret},
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api,
    api::{ApiResource, DeleteParams, DynamicObject, GroupVersionKind, PostParams},
};
use serde_json::json;
use support::{TestNamespace, control_plane, eventually};

#[tokio::test]
async fn the_control_plane_serves_crds_objects_and_secrets() {
    let client = control_plane().client().await;
    let ns = TestNamespace::create(&client, "smoke").await;

    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": { "name": "widgets.smoke.actortokens.dev" },
        "spec": {
            "group": "smoke.actortokens.dev",
            "names": { "kind": "Widget", "plural": "widgets", "singular": "widget" },
            "scope": "Namespaced",
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": { "openAPIV3Schema": { "type": "object", "properties": {
                    "spec": { "type": "object", "properties": { "size": { "type": "integer", "minimum": 1 } } }
                } } }
            }]
        }
    }))
    .unwrap();
    let crds = Api::<CustomResourceDefinition>::all(client.clone());
    if crds
        .get_opt("widgets.smoke.actortokens.dev")
        .await
        .unwrap()
        .is_none()
    {
        crds.create(&PostParams::default(), &crd)
            .await
            .expect("create the CRD");
    }
    let gvk = GroupVersionKind::gvk("smoke.actortokens.dev", "v1", "Widget");
    let resource = ApiResource::from_gvk_with_plural(&gvk, "widgets");
    let widgets = Api::<DynamicObject>::namespaced_with(client.clone(), &ns.name, &resource);
    let widget =
        |size: i64| DynamicObject::new("w1", &resource).data(json!({ "spec": { "size": size } }));
    // The CRD takes a moment to be served; until then creates answer 404.
    eventually(
        Duration::from_secs(30),
        "the Widget CRD to be served",
        || async {
            widgets
                .create(&PostParams::default(), &widget(3))
                .await
                .ok()
        },
    )
    .await;
    let stored = widgets.get("w1").await.unwrap();
    assert_eq!(stored.data["spec"]["size"], 3);
    // The schema is enforced by the API server.
    let mut bad = widget(0);
    bad.metadata.name = Some("w2".into());
    let error = widgets
        .create(&PostParams::default(), &bad)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("spec.size"), "{error}");

    let secrets = Api::<Secret>::namespaced(client.clone(), &ns.name);
    let secret: Secret = serde_json::from_value(json!({
        "metadata": { "name": "s1" }, "stringData": { "k": "v" }
    }))
    .unwrap();
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let stored = secrets.get("s1").await.unwrap();
    assert_eq!(stored.data.unwrap()["k"].0, b"v");
}

#[tokio::test]
async fn an_owned_object_is_garbage_collected_with_its_owner() {
    let client = control_plane().client().await;
    let ns = TestNamespace::create(&client, "smoke-gc").await;
    let config_maps = Api::<ConfigMap>::namespaced(client.clone(), &ns.name);
    let owner = config_maps
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({ "metadata": { "name": "owner" } })).unwrap(),
        )
        .await
        .unwrap();
    let child: ConfigMap = serde_json::from_value(json!({
        "metadata": {
            "name": "child",
            "ownerReferences": [{
                "apiVersion": "v1", "kind": "ConfigMap", "name": "owner",
                "uid": owner.metadata.uid.clone().unwrap()
            }]
        }
    }))
    .unwrap();
    config_maps
        .create(&PostParams::default(), &child)
        .await
        .unwrap();
    config_maps
        .delete("owner", &DeleteParams::background())
        .await
        .unwrap();
    eventually(
        Duration::from_secs(60),
        "the child to be garbage-collected",
        || async {
            config_maps
                .get_opt("child")
                .await
                .unwrap()
                .is_none()
                .then_some(())
        },
    )
    .await;
}
