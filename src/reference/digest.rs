use std::fmt;
use std::str::FromStr;

/// A content digest algorithm that registries and runtimes accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DigestAlgorithm {
    /// SHA-256, the algorithm registries use in practice.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl DigestAlgorithm {
    /// The algorithm's name as written in a digest (`sha256`).
    pub fn as_str(self) -> &'static str {
        match self {
            DigestAlgorithm::Sha256 => "sha256",
            DigestAlgorithm::Sha384 => "sha384",
            DigestAlgorithm::Sha512 => "sha512",
        }
    }

    /// The number of hex characters of an encoded digest of this algorithm.
    pub fn hex_len(self) -> usize {
        match self {
            DigestAlgorithm::Sha256 => 64,
            DigestAlgorithm::Sha384 => 96,
            DigestAlgorithm::Sha512 => 128,
        }
    }
}

impl fmt::Display for DigestAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a digest is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// No `:` between the algorithm and the hex.
    #[error("digest {digest:?} has no ':' between algorithm and hex")]
    MissingSeparator {
        /// The digest, as written.
        digest: String,
    },
    /// The algorithm is not one of [`DigestAlgorithm`].
    #[error("digest algorithm {algorithm:?} is not supported; use sha256 (or sha384, sha512)")]
    UnsupportedAlgorithm {
        /// The text before the `:`, as written.
        algorithm: String,
    },
    /// The hex is not as long as the algorithm's output.
    #[error("a {algorithm} digest has {expected} hex characters, this one has {actual}")]
    Length {
        /// The digest's algorithm.
        algorithm: DigestAlgorithm,
        /// Hex characters that algorithm's digest has ([`DigestAlgorithm::hex_len`]).
        expected: usize,
        /// Hex characters this one has.
        actual: usize,
    },
    /// The hex has a character outside lowercase `0-9a-f` (checked before the length).
    #[error("digest hex must be lowercase 0-9a-f; found {ch:?}")]
    NotHex {
        /// The first such character.
        ch: char,
    },
}

/// A validated content digest: `sha256:` followed by 64 lowercase hex characters, or the
/// sha384/sha512 equivalents. Validation follows go-digest, which containerd uses: the
/// algorithm must be known and the hex exactly as long as the algorithm's output.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: DigestAlgorithm,
    hex: String,
}

impl Digest {
    /// The algorithm.
    pub fn algorithm(&self) -> DigestAlgorithm {
        self.algorithm
    }

    /// The encoded (hex) part.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The first 12 hex characters, for people (`sha256:0123456789ab`).
    pub fn short(&self) -> String {
        format!("{}:{}", self.algorithm, &self.hex[..12])
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm, self.hex)
    }
}

/// Serialized as `algorithm:hex`.
impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let Some((algorithm, hex)) = s.split_once(':') else {
            return Err(DigestError::MissingSeparator {
                digest: s.to_owned(),
            });
        };
        let algorithm = match algorithm {
            "sha256" => DigestAlgorithm::Sha256,
            "sha384" => DigestAlgorithm::Sha384,
            "sha512" => DigestAlgorithm::Sha512,
            other => {
                return Err(DigestError::UnsupportedAlgorithm {
                    algorithm: other.to_owned(),
                });
            }
        };
        if let Some(ch) = hex.chars().find(|c| !matches!(c, '0'..='9' | 'a'..='f')) {
            return Err(DigestError::NotHex { ch });
        }
        if hex.len() != algorithm.hex_len() {
            return Err(DigestError::Length {
                algorithm,
                expected: algorithm.hex_len(),
                actual: hex.len(),
            });
        }
        Ok(Digest {
            algorithm,
            hex: hex.to_owned(),
        })
    }
}
