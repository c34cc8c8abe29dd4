//! Plugin components from OCI registries, in the Wasm artifact layout Spin
//! and wasmCloud use (one `application/wasm` layer), through oci-client.

use std::str::FromStr;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

use crate::runtime::ComponentDigest;

/// The layer media types a component may come in: the Wasm OCI artifact
/// layout's, and the older one oci-client names.
const LAYER_TYPES: [&str; 2] = [
    "application/wasm",
    oci_client::manifest::WASM_LAYER_MEDIA_TYPE,
];

/// `oci://HOST[:PORT]/REPOSITORY(:TAG|@sha256:DIGEST)`.
#[derive(Debug, Clone)]
pub struct OciReference {
    reference: Reference,
    text: String,
}

#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error(
        "`{0}` is not an OCI reference: write oci://HOST/REPOSITORY:TAG or oci://HOST/REPOSITORY@sha256:DIGEST"
    )]
    BadReference(String),
    #[error("{reference}: {message}")]
    Registry { reference: String, message: String },
    #[error("{reference}: holds {found} layers; a plugin is one application/wasm layer")]
    Layers { reference: String, found: usize },
}

impl FromStr for OciReference {
    type Err = PullError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || PullError::BadReference(text.chars().take(200).collect());
        let rest = text.strip_prefix("oci://").ok_or_else(bad)?;
        // A bare name would silently mean Docker Hub: the registry is named.
        let (host, _) = rest.split_once('/').ok_or_else(bad)?;
        if host.is_empty() || !(host.contains('.') || host.contains(':') || host == "localhost") {
            return Err(bad());
        }
        let reference = Reference::from_str(rest).map_err(|_| bad())?;
        Ok(OciReference {
            reference,
            text: text.to_string(),
        })
    }
}

impl std::fmt::Display for OciReference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl OciReference {
    /// The repository's last segment: the file name a pulled plugin gets.
    pub fn name(&self) -> &str {
        let repository = self.reference.repository();
        repository.rsplit('/').next().unwrap_or(repository)
    }

    /// Loopback registries speak plain HTTP, as Docker assumes; every other
    /// registry HTTPS.
    fn is_loopback(&self) -> bool {
        let registry = self.reference.registry();
        let host = registry
            .rsplit_once(':')
            .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
            .map_or(registry, |(host, _)| host);
        host == "localhost"
            || host
                .trim_matches(|c| c == '[' || c == ']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }
}

/// A component as pulled: its bytes, which oci-client checked against the
/// manifest's layer digest, and that digest.
pub struct Pulled {
    pub bytes: Vec<u8>,
    pub digest: ComponentDigest,
}

/// Pulls the one Wasm layer of `reference`, anonymously or as
/// `CHECKHOST_REGISTRY_USERNAME` with `CHECKHOST_REGISTRY_PASSWORD`.
pub async fn pull(reference: &OciReference) -> Result<Pulled, PullError> {
    let failed = |message: String| PullError::Registry {
        reference: reference.text.clone(),
        message,
    };
    let protocol = if reference.is_loopback() {
        ClientProtocol::Http
    } else {
        ClientProtocol::Https
    };
    let client = Client::new(ClientConfig {
        protocol,
        ..ClientConfig::default()
    });
    let auth = match (
        std::env::var("CHECKHOST_REGISTRY_USERNAME"),
        std::env::var("CHECKHOST_REGISTRY_PASSWORD"),
    ) {
        (Ok(user), Ok(password)) => RegistryAuth::Basic(user, password),
        _ => RegistryAuth::Anonymous,
    };
    let image = client
        .pull(&reference.reference, &auth, LAYER_TYPES.to_vec())
        .await
        .map_err(|e| failed(e.to_string()))?;
    let [layer] = <[_; 1]>::try_from(image.layers).map_err(|layers: Vec<_>| PullError::Layers {
        reference: reference.text.clone(),
        found: layers.len(),
    })?;
    let digest = ComponentDigest::of(&layer.data);
    Ok(Pulled {
        bytes: layer.data,
        digest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_name_their_registry() {
        let r: OciReference = "oci://127.0.0.1:5000/checkhost/http-request:1.0"
            .parse()
            .unwrap();
        assert_eq!(r.name(), "http-request");
        assert!(r.is_loopback());
        let r: OciReference = "oci://ghcr.io/acme/uptime@sha256:0123456789012345678901234567890123456789012345678901234567890123"
            .parse()
            .unwrap();
        assert_eq!(r.name(), "uptime");
        assert!(!r.is_loopback());
        for bad in [
            "ghcr.io/acme/uptime:1",
            "oci://uptime:1",
            "oci://acme/uptime:1",
            "oci://",
        ] {
            assert!(bad.parse::<OciReference>().is_err(), "{bad}");
        }
    }
}
