//! The files a policy names (`spec.trustedRoot`), read beside the policy file: a relative
//! name is relative to the policy's directory, so that a policy and its trusted root mounted
//! from one ConfigMap find each other wherever it is mounted.

use std::io::Read as _;
use std::path::{Path, PathBuf};

/// The largest file a policy may name.
pub const MAX_FILE_BYTES: u64 = 4 << 20;

/// Where `name` is, for a policy at `policy`.
pub fn beside(policy: &Path, name: &str) -> PathBuf {
    let name = Path::new(name);
    if name.is_absolute() {
        return name.to_owned();
    }
    policy.parent().unwrap_or(Path::new("")).join(name)
}

/// Read `name` beside the policy at `policy`, at most [`MAX_FILE_BYTES`]; `Err`: why not, in
/// one line, with the path tried.
pub fn read_beside(policy: &Path, name: &str) -> Result<Vec<u8>, String> {
    let path = beside(policy, name);
    let file =
        std::fs::File::open(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut out = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if out.len() as u64 > MAX_FILE_BYTES {
        return Err(format!(
            "{} is larger than {MAX_FILE_BYTES} bytes",
            path.display()
        ));
    }
    Ok(out)
}
