//! The password math of PostgreSQL authentication: the MD5 answer and
//! SCRAM-SHA-256 (RFC 5802 / RFC 7677) without channel binding.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use md5::Md5;
use sha2::{Digest, Sha256};

/// The most PBKDF2 iterations a server may ask for: PostgreSQL's default is
/// 4096, and a hostile server must not make the guest spin for minutes.
pub const MAX_SCRAM_ITERATIONS: u32 = 1_000_000;

/// `md5` + hex(md5(hex(md5(password + user)) + salt)), as libpq sends it.
pub fn md5_password(user: &str, password: &str, salt: [u8; 4]) -> String {
    let inner = hex(&Md5::digest(
        [password.as_bytes(), user.as_bytes()].concat(),
    ));
    let outer = hex(&Md5::digest([inner.as_bytes(), &salt].concat()));
    format!("md5{outer}")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// PBKDF2-HMAC-SHA256 for one 32-byte block, which is all SCRAM needs.
fn salted_password(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 32] {
    // HMAC accepts keys of any length, so keying cannot fail.
    let keyed = HmacSha256::new_from_slice(password).unwrap_or_else(|_| unreachable!());
    let mut u: [u8; 32] = keyed
        .clone()
        .chain_update(salt)
        .chain_update(1u32.to_be_bytes())
        .finalize()
        .into_bytes()
        .into();
    let mut out = u;
    for _ in 1..iterations {
        u = keyed.clone().chain_update(u).finalize().into_bytes().into();
        for (o, b) in out.iter_mut().zip(u) {
            *o ^= b;
        }
    }
    out
}

/// A SCRAM-SHA-256 exchange in progress, from the client's side.
pub struct Scram {
    client_first_bare: String,
    nonce: String,
}

/// What the client sends last, and what the server must prove it knows.
pub struct ScramFinal {
    pub message: String,
    pub server_signature: String,
}

impl Scram {
    /// Starts an exchange with a fresh random nonce. PostgreSQL takes the
    /// user from the startup message, so `user` is empty there.
    pub fn new(user: &str) -> Result<Scram, String> {
        let mut bytes = [0u8; 18];
        getrandom::fill(&mut bytes).map_err(|e| format!("no random nonce: {e}"))?;
        Ok(Scram::with_nonce(user, &BASE64.encode(bytes)))
    }

    pub fn with_nonce(user: &str, nonce: &str) -> Scram {
        let user = user.replace('=', "=3D").replace(',', "=2C");
        Scram {
            client_first_bare: format!("n={user},r={nonce}"),
            nonce: nonce.to_string(),
        }
    }

    /// The client-first message: no channel binding (`n,,`).
    pub fn client_first(&self) -> String {
        format!("n,,{}", self.client_first_bare)
    }

    /// Answers the server-first message with the proof of `password`.
    pub fn client_final(&self, password: &str, server_first: &str) -> Result<ScramFinal, String> {
        let mut nonce = None;
        let mut salt = None;
        let mut iterations = None;
        for attribute in server_first.split(',') {
            match attribute.split_once('=') {
                Some(("r", v)) => nonce = Some(v),
                Some(("s", v)) => salt = Some(v),
                Some(("i", v)) => iterations = Some(v),
                _ => {}
            }
        }
        let nonce = nonce.ok_or("the server's SCRAM message has no nonce")?;
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
            return Err("the server's SCRAM nonce does not extend the client's".into());
        }
        let salt = BASE64
            .decode(salt.ok_or("the server's SCRAM message has no salt")?)
            .map_err(|e| format!("the server's SCRAM salt is not base64: {e}"))?;
        let iterations: u32 = iterations
            .and_then(|i| i.parse().ok())
            .filter(|i| (1..=MAX_SCRAM_ITERATIONS).contains(i))
            .ok_or_else(|| {
                format!("the server's SCRAM iteration count is missing or not in 1..={MAX_SCRAM_ITERATIONS}")
            })?;
        let salted = salted_password(password.as_bytes(), &salt, iterations);
        let client_key = hmac(&salted, b"Client Key");
        let stored_key: [u8; 32] = Sha256::digest(client_key).into();
        // "biws" is base64 of the gs2 header "n,,".
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let signature = hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let server_key = hmac(&salted, b"Server Key");
        Ok(ScramFinal {
            message: format!("{without_proof},p={}", BASE64.encode(proof)),
            server_signature: BASE64.encode(hmac(&server_key, auth_message.as_bytes())),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scram_matches_the_rfc_7677_example() {
        let scram = Scram::with_nonce("user", "rOprNGfwEbeRWgbNEkqO");
        assert_eq!(scram.client_first(), "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let last = scram
            .client_final(
                "pencil",
                "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
            )
            .unwrap();
        assert_eq!(
            last.message,
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        assert_eq!(
            last.server_signature,
            "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
    }

    #[test]
    fn scram_refuses_a_server_that_does_not_extend_the_nonce_or_asks_too_much() {
        let scram = Scram::with_nonce("", "abc");
        for server_first in [
            "r=xyz123,s=QUJD,i=4096",
            "r=abc,s=QUJD,i=4096",
            "r=abc123,s=QUJD,i=0",
            "r=abc123,s=QUJD,i=99999999",
            "r=abc123,s=not base64!,i=4096",
            "r=abc123,i=4096",
        ] {
            assert!(
                scram.client_final("pw", server_first).is_err(),
                "{server_first}"
            );
        }
    }

    #[test]
    fn scram_nonces_are_fresh_and_usernames_escaped() {
        let a = Scram::new("").unwrap().client_first();
        let b = Scram::new("").unwrap().client_first();
        assert!(a.starts_with("n,,n=,r="), "{a}");
        assert_ne!(a, b);
        assert_eq!(
            Scram::with_nonce("a=b,c", "n").client_first(),
            "n,,n=a=3Db=2Cc,r=n"
        );
    }

    #[test]
    fn md5_answer_is_libpqs() {
        // Computed independently: "md5" + md5(md5("secret" + "postgres") + salt).
        assert_eq!(
            md5_password("postgres", "secret", [1, 2, 3, 4]),
            "md5bb41a296aab6baccb36ff243a562abff"
        );
    }
}
