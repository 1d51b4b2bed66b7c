//! Encryption at rest: every raft log record and every snapshot a member
//! writes is sealed with XChaCha20-Poly1305 under the member's data key,
//! so that secret and config data (and the cluster's CA key) never reach
//! its disk in clear.
//!
//! Each member has its own 256-bit data key, made when its store is first
//! opened, in `<data dir>/data.key` (mode 0600). A sealed record is
//! `SWE1 ‖ nonce (24 random bytes) ‖ ciphertext ‖ tag`; a random 192-bit
//! nonce never repeats in practice, however many records a key seals.
//!
//! What protects the data key: without autolock, only the file's
//! permissions, as Docker's swarm without `--autolock` (it keeps its key
//! next to the data too); the encryption keeps the data safe from a copy
//! of the log or a snapshot (a backup, a disk sent for repair) that does
//! not carry the key file. With autolock the file holds the data key
//! sealed with the cluster's unlock key ([`RaftConfig::unlock_key`]), and
//! the store does not open without it.
//!
//! [`RaftConfig::unlock_key`]: crate::RaftConfig::unlock_key

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;
use std::sync::Arc;

use chacha20poly1305::XChaCha20Poly1305;
use chacha20poly1305::aead::{Aead, KeyInit};
use rand::RngCore as _;

/// The prefix of a sealed record.
const MAGIC: &[u8; 4] = b"SWE1";
const NONCE: usize = 24;
/// The key file, in the store's data directory.
pub(crate) const KEY_FILE: &str = "data.key";
const KEY_HEADER: &str = "swarm-data-key-1 plain ";

/// Seals and opens what a member writes to disk.
#[derive(Clone)]
pub(crate) struct Sealer {
    cipher: Arc<XChaCha20Poly1305>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(<key>)")
    }
}

impl Sealer {
    /// A sealer with `key`.
    pub(crate) fn new(key: &[u8; 32]) -> Self {
        let key = chacha20poly1305::Key::from(*key);
        Self {
            cipher: Arc::new(XChaCha20Poly1305::new(&key)),
        }
    }

    /// A sealer with a fresh random key (tests).
    #[cfg(test)]
    pub(crate) fn random() -> Self {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        Self::new(&key)
    }

    /// `plain`, sealed.
    pub(crate) fn seal(&self, plain: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(&chacha20poly1305::XNonce::from(nonce), plain)
            .expect("sealing into a vector cannot fail");
        let mut out = Vec::with_capacity(MAGIC.len() + NONCE + sealed.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// What [`Sealer::seal`] sealed. Bytes without the prefix were
    /// written before encryption at rest existed, and are read as they
    /// are (they go as the log is compacted).
    pub(crate) fn open(&self, bytes: &[u8]) -> Result<Vec<u8>, String> {
        let Some(rest) = bytes.strip_prefix(MAGIC) else {
            return Ok(bytes.to_vec());
        };
        if rest.len() < NONCE {
            return Err("a sealed record too short to hold its nonce".into());
        }
        let (nonce, sealed) = rest.split_at(NONCE);
        let nonce: [u8; NONCE] = nonce.try_into().expect("24 bytes");
        self.cipher
            .decrypt(&chacha20poly1305::XNonce::from(nonce), sealed)
            .map_err(|_| {
                format!(
                    "a sealed record does not open with this member's data key ({KEY_FILE}): the key is not the one it was written with, or the record is corrupt"
                )
            })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Where the data key is: `<dir>/data.key`, plain or sealed with an
/// unlock key.
#[derive(Debug, Clone)]
pub(crate) struct KeyFile {
    dir: std::path::PathBuf,
    key: [u8; 32],
}

const SEALED_HEADER: &str = "swarm-data-key-1 sealed ";

impl KeyFile {
    /// The member's data key in `dir`, made first if there is none (plain,
    /// or sealed with `unlock` when given). A key sealed with an unlock key
    /// needs it: without it, or with another, this is
    /// [`crate::Error::Locked`].
    pub(crate) fn open_or_create(
        dir: &Path,
        unlock: Option<&[u8; 32]>,
    ) -> Result<Self, crate::Error> {
        let path = dir.join(KEY_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let text = text.trim();
                let bad = || {
                    crate::Error::Storage(format!(
                        "{} is not a data key this version can read",
                        path.display()
                    ))
                };
                let key = if let Some(h) = text.strip_prefix(KEY_HEADER) {
                    unhex(h).ok_or_else(bad)?
                } else if let Some(h) = text.strip_prefix(SEALED_HEADER) {
                    let sealed = unhex(h).ok_or_else(bad)?;
                    let Some(k) = unlock else {
                        return Err(crate::Error::Locked(
                            "this manager is locked (autolock): unlock it with `swarmctl swarm unlock` and the cluster's unlock key".into(),
                        ));
                    };
                    Sealer::new(k).open(&sealed).map_err(|_| {
                        crate::Error::Locked(
                            "invalid unlock key: it does not open this manager's data key (a key rotated since this manager last ran does not either: give the one it had)".into(),
                        )
                    })?
                } else {
                    return Err(bad());
                };
                let key = <[u8; 32]>::try_from(key).map_err(|_| bad())?;
                Ok(Self {
                    dir: dir.to_owned(),
                    key,
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                rand::rng().fill_bytes(&mut key);
                let file = Self {
                    dir: dir.to_owned(),
                    key,
                };
                file.write(unlock)?;
                Ok(file)
            }
            Err(e) => Err(crate::Error::Storage(format!("{}: {e}", path.display()))),
        }
    }

    /// The sealer of this key.
    pub(crate) fn sealer(&self) -> Sealer {
        Sealer::new(&self.key)
    }

    /// Writes the key again: sealed with `unlock`, or plain without.
    pub(crate) fn write(&self, unlock: Option<&[u8; 32]>) -> Result<(), crate::Error> {
        let path = self.dir.join(KEY_FILE);
        let storage = |e: std::io::Error| crate::Error::Storage(format!("{}: {e}", path.display()));
        std::fs::create_dir_all(&self.dir).map_err(storage)?;
        let line = match unlock {
            Some(k) => format!("{SEALED_HEADER}{}", hex(&Sealer::new(k).seal(&self.key))),
            None => format!("{KEY_HEADER}{}", hex(&self.key)),
        };
        let tmp = self.dir.join(format!("{KEY_FILE}.tmp"));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(storage)?;
        writeln!(f, "{line}").map_err(storage)?;
        f.sync_all().map_err(storage)?;
        drop(f);
        std::fs::rename(&tmp, &path).map_err(storage)?;
        std::fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(storage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_bytes_open_with_their_key_only() {
        let a = Sealer::random();
        let sealed = a.seal(b"db-password");
        assert!(!sealed.windows(11).any(|w| w == b"db-password"));
        assert_eq!(a.open(&sealed).unwrap(), b"db-password");
        assert_ne!(a.seal(b"db-password"), sealed, "a fresh nonce each time");
        let e = Sealer::random().open(&sealed).unwrap_err();
        assert!(
            e.contains("does not open with this member's data key"),
            "{e}"
        );
        let mut bad = sealed.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(a.open(&bad).is_err(), "tampering is caught");
        assert_eq!(a.open(b"\x93legacy").unwrap(), b"\x93legacy");
    }

    #[test]
    fn the_key_is_made_once_and_kept_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let first = KeyFile::open_or_create(dir.path(), None).unwrap().sealer();
        let sealed = first.seal(b"x");
        let again = KeyFile::open_or_create(dir.path(), None).unwrap().sealer();
        assert_eq!(again.open(&sealed).unwrap(), b"x");
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::write(dir.path().join(KEY_FILE), "garbage").unwrap();
        let e = KeyFile::open_or_create(dir.path(), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("is not a data key"), "{e}");
    }

    #[test]
    fn a_sealed_key_opens_with_its_unlock_key_only() {
        let dir = tempfile::tempdir().unwrap();
        let file = KeyFile::open_or_create(dir.path(), None).unwrap();
        let sealed = file.sealer().seal(b"x");
        let (k1, k2) = ([1u8; 32], [2u8; 32]);
        file.write(Some(&k1)).unwrap();
        let text = std::fs::read_to_string(dir.path().join(KEY_FILE)).unwrap();
        assert!(!text.contains(&hex(&file.key)), "the key is not in clear");
        let e = KeyFile::open_or_create(dir.path(), None).unwrap_err();
        assert!(matches!(e, crate::Error::Locked(_)), "{e}");
        let e = KeyFile::open_or_create(dir.path(), Some(&k2)).unwrap_err();
        assert!(e.to_string().contains("invalid unlock key"), "{e}");
        let opened = KeyFile::open_or_create(dir.path(), Some(&k1)).unwrap();
        assert_eq!(opened.sealer().open(&sealed).unwrap(), b"x");
        // Rotated: the new key opens it, the old one does not.
        opened.write(Some(&k2)).unwrap();
        assert!(KeyFile::open_or_create(dir.path(), Some(&k1)).is_err());
        assert!(KeyFile::open_or_create(dir.path(), Some(&k2)).is_ok());
        // Autolock off: plain again.
        opened.write(None).unwrap();
        assert!(KeyFile::open_or_create(dir.path(), None).is_ok());
    }
}
