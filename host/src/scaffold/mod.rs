//! Plugin projects: `plugin new` writes one from a template, `plugin build`
//! turns it into a component with its language's toolchain.

mod new;
mod toolchain;

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use new::{NewPlugin, new_plugin};
pub use toolchain::build;

/// The file that tells `plugin build` what a folder holds.
pub const MANIFEST: &str = "checkhost-plugin.json";

/// The world Python and JavaScript strategies build against: `strategy`
/// plus the wasi:sockets imports they call themselves.
const SOCKETS_WORLD: &str = "strategy-with-sockets";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Strategy,
    Collector,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    Rust,
    Python,
    Js,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Strategy => "strategy",
            Kind::Collector => "collector",
        })
    }
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Lang::Rust => "rust",
            Lang::Python => "python",
            Lang::Js => "js",
        })
    }
}

/// What `plugin new` recorded about a plugin project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub name: String,
    pub kind: Kind,
    pub lang: Lang,
}

#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    #[error("`{0}` already exists; plugin new writes only into a new folder")]
    Exists(PathBuf),
    #[error(
        "invalid plugin name `{0}`: use lowercase letters, digits and dashes, starting with a letter (at most 40)"
    )]
    BadName(String),
    #[error(
        "cannot find checkhost's Rust SDK at `{0}`; pass --sdk with the path of the `sdk` folder of a checkhost checkout"
    )]
    NoSdk(PathBuf),
    #[error("`{dir}` is not a plugin project: {reason}")]
    NotAPlugin { dir: PathBuf, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("`{tool}` is needed to build {lang} plugins but could not run: {source}. {hint}")]
    Tool {
        tool: String,
        lang: Lang,
        hint: &'static str,
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}); its output is above")]
    Failed { command: String, status: String },
}

/// A plugin id: what `describe` reports and what configs name.
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && name.len() <= 40
        && !name.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_plugin_ids() {
        for good in ["status", "my-check2"] {
            assert!(valid_name(good), "{good}");
        }
        for bad in [
            "",
            "2fast",
            "Upper",
            "under_score",
            "dash-",
            "a b",
            &"x".repeat(41),
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
