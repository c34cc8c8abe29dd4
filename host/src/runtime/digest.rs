//! A component file's identity: the SHA-256 of its bytes, written
//! `sha256:<64 hex digits>` as OCI registries write digests. What a lock
//! file pins and what a probe asks the server for.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ComponentDigest([u8; 32]);

impl ComponentDigest {
    pub fn of(bytes: &[u8]) -> ComponentDigest {
        ComponentDigest(Sha256::digest(bytes).into())
    }
}

impl fmt::Display for ComponentDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", hex::encode(self.0))
    }
}

impl fmt::Debug for ComponentDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not a digest: write sha256:<64 hex digits>")]
pub struct BadDigest(String);

impl FromStr for ComponentDigest {
    type Err = BadDigest;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadDigest(s.chars().take(80).collect());
        let hex_digits = s.strip_prefix("sha256:").ok_or_else(bad)?;
        if hex_digits.len() != 64 {
            return Err(bad());
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(hex_digits.to_ascii_lowercase(), &mut bytes).map_err(|_| bad())?;
        Ok(ComponentDigest(bytes))
    }
}

impl serde::Serialize for ComponentDigest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for ComponentDigest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_round_trip_and_refuse_other_forms() {
        let d = ComponentDigest::of(b"abc");
        let text = d.to_string();
        assert_eq!(
            text,
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(text.parse::<ComponentDigest>().unwrap(), d);
        assert_eq!(
            text.to_uppercase()
                .replace("SHA256", "sha256")
                .parse::<ComponentDigest>()
                .unwrap(),
            d
        );
        for bad in ["ba7816bf", "sha512:00", "sha256:zz", &text[..70]] {
            assert!(bad.parse::<ComponentDigest>().is_err(), "{bad}");
        }
    }
}
