//! Reaching the cluster as the user: their kubeconfig (`--kubeconfig`, else `$KUBECONFIG`, else
//! `~/.kube/config`, else in-cluster), their context and namespace, as kubectl does.

use actor_token_operator::api::{ActorTokenRequest, UserInfo};
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use kube::{
    Api, Client, Config,
    api::PostParams,
    config::{KubeConfigOptions, Kubeconfig},
};

use crate::{
    cli::Global,
    error::{Error, from_kube},
};

pub struct Cluster {
    pub client: Client,
    /// `-n`, else the context's namespace, else `default`.
    pub namespace: String,
}

impl Cluster {
    pub async fn connect(global: &Global) -> Result<Cluster, Error> {
        let options = KubeConfigOptions {
            context: global.context.clone(),
            ..Default::default()
        };
        let config = match (&global.kubeconfig, &global.context) {
            (Some(path), _) => {
                let kubeconfig = Kubeconfig::read_from(path)
                    .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
                Config::from_custom_kubeconfig(kubeconfig, &options)
                    .await
                    .map_err(|e| Error::Config(e.to_string()))?
            }
            (None, Some(_)) => Config::from_kubeconfig(&options)
                .await
                .map_err(|e| Error::Config(e.to_string()))?,
            (None, None) => Config::infer()
                .await
                .map_err(|e| Error::Config(e.to_string()))?,
        };
        let namespace = global
            .namespace
            .clone()
            .unwrap_or_else(|| config.default_namespace.clone());
        let client = Client::try_from(config).map_err(|e| Error::Config(e.to_string()))?;
        Ok(Cluster { client, namespace })
    }

    pub fn requests(&self) -> Api<ActorTokenRequest> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// Who the API server says we are (SelfSubjectReview), as admission stamps it.
    pub async fn me(&self) -> Result<UserInfo, Error> {
        let review = Api::<SelfSubjectReview>::all(self.client.clone())
            .create(&PostParams::default(), &SelfSubjectReview::default())
            .await
            .map_err(|e| from_kube("asking the API server who you are (SelfSubjectReview)", e))?;
        let info = review
            .status
            .and_then(|s| s.user_info)
            .ok_or_else(|| Error::Other("the SelfSubjectReview named nobody".into()))?;
        Ok(UserInfo {
            username: info.username.unwrap_or_default(),
            uid: info.uid.filter(|u| !u.is_empty()),
            groups: info.groups.unwrap_or_default(),
        })
    }

    /// `NAMESPACE/NAME`, for messages.
    pub fn named(&self, name: &str) -> String {
        format!("{}/{name}", self.namespace)
    }
}
