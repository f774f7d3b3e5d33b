//! sha256 of files and bytes, for manifests and resume checks: the one place pingce hashes.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A file by content: its path as given, lowercase-hex sha256 and size.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileHash {
    pub path: String,
    pub sha256: String,
    pub bytes: u64,
}

/// sha256 of bytes.
pub fn sha256(b: &[u8]) -> [u8; 32] {
    Sha256::digest(b).into()
}

/// sha256 of bytes, lowercase hex.
pub fn sha256_hex(b: &[u8]) -> String {
    format!("{:x}", Sha256::digest(b))
}

/// Hashes a file, streamed.
pub fn hash_file(path: &Path) -> Result<FileHash> {
    let mut f = std::fs::File::open(path).with_context(|| format!("hashing {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = f.read(&mut buf).with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        bytes += n as u64;
    }
    Ok(FileHash { path: path.display().to_string(), sha256: format!("{:x}", h.finalize()), bytes })
}

/// sha256 of a file, lowercase hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    Ok(hash_file(path)?.sha256)
}

/// The hashes of `files`, in order.
pub fn hash_files(files: &[PathBuf]) -> Result<Vec<FileHash>> {
    files.iter().map(|p| hash_file(p)).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn known_digest() {
        assert_eq!(super::sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(super::sha256(b"abc")[0], 0xba);
    }
}
