//! SHA-256 of model files, streamed so multi-gigabyte GGUFs are hashed in constant memory. The
//! hex digest identifies a model across machines (the coordinator pins models by it).

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use sha2::{Digest, Sha256};

/// A SHA-256 fed piece by piece: a transfer hashes its bytes as they arrive, and a resumed one
/// first feeds it the part already on disk ([`Sha256Stream::update_from_file`]).
#[derive(Debug, Clone, Default)]
pub struct Sha256Stream {
    hasher: Sha256,
    len: u64,
}

impl Sha256Stream {
    pub fn new() -> Sha256Stream {
        Sha256Stream::default()
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
        self.len += bytes.len() as u64;
    }

    /// Feeds the first `len` bytes of the file at `path` (a partial download being resumed).
    pub fn update_from_file(&mut self, path: &Path, len: u64) -> io::Result<()> {
        let mut file = File::open(path)?.take(len);
        let mut buf = vec![0u8; 1 << 20];
        loop {
            match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => self.update(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        if self.len < len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{} is shorter than {len} bytes", path.display()),
            ));
        }
        Ok(())
    }

    /// Bytes hashed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The lowercase hex digest of everything fed.
    pub fn finish(self) -> String {
        hex(&self.hasher.finalize())
    }
}

/// Lowercase hex SHA-256 of the file at `path`, read in 1 MiB chunks.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_bytes(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(digest: &[u8]) -> String {
    use std::fmt::Write;
    digest.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        assert_eq!(
            sha256_bytes(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sha256_bytes(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn file_hash_matches_bytes_hash_across_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.bin");
        // Larger than one chunk, with a pattern so chunk boundaries matter.
        let data: Vec<u8> = (0..(3 << 20) + 17).map(|i: u32| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        assert_eq!(sha256_file(&path).unwrap(), sha256_bytes(&data));
        assert!(sha256_file(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn a_stream_resumed_from_a_file_prefix_hashes_like_the_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("part");
        let data: Vec<u8> = (0..(2 << 20) + 5).map(|i: u32| (i % 241) as u8).collect();
        let cut = (1 << 20) + 3;
        std::fs::write(&path, &data[..cut]).unwrap();
        let mut stream = Sha256Stream::new();
        stream.update_from_file(&path, cut as u64).unwrap();
        assert_eq!(stream.len(), cut as u64);
        stream.update(&data[cut..]);
        assert_eq!(stream.finish(), sha256_bytes(&data));
        // A prefix longer than the file is an error, not a silent short hash.
        assert!(
            Sha256Stream::new()
                .update_from_file(&path, cut as u64 + 1)
                .is_err()
        );
    }
}
