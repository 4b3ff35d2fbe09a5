//! Writing result files so that a crash, a full disk or a kill never leaves a truncated file:
//! the bytes go to a hidden temporary file in the same folder, are fsynced, and the temporary is
//! renamed over the target (atomic on one file system). On failure the temporary is removed and
//! the previous file, if any, is untouched.
//!
//! A command that writes several files (every fit of a run, every figure of a report) stages them
//! all in one [`Staged`] first and renames them only once every one is on disk: a run's outputs
//! are all or nothing.
//!
//! The hidden variable `ENERGY_FIT_DISK_BYTES=N` makes every write through this module behave as
//! on a disk with N free bytes (later writes fail with "no space left"), so tests can prove that a
//! full disk never damages a good file without needing a small file system.

use anyhow::{bail, Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// Environment variable simulating a disk with that many free bytes (see the module comment).
pub const DISK_BYTES_ENV: &str = "ENERGY_FIT_DISK_BYTES";

fn disk_left() -> Option<&'static AtomicU64> {
    static LEFT: OnceLock<Option<AtomicU64>> = OnceLock::new();
    LEFT.get_or_init(|| {
        std::env::var(DISK_BYTES_ENV)
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .map(AtomicU64::new)
    })
    .as_ref()
}

/// Write `bytes` to an open file, honouring the simulated free space.
fn write_limited(f: &mut std::fs::File, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(left) = disk_left() {
        let have = left.load(Ordering::SeqCst);
        if (bytes.len() as u64) > have {
            // Like a real full disk: what fits is written, then the write fails.
            f.write_all(&bytes[..have as usize])?;
            left.store(0, Ordering::SeqCst);
            return Err(std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                format!("no space left on device ({DISK_BYTES_ENV})"),
            ));
        }
        left.fetch_sub(bytes.len() as u64, Ordering::SeqCst);
    }
    f.write_all(bytes)
}

/// Files written to hidden temporaries, renamed over their targets by [`Staged::commit`];
/// dropped uncommitted, the temporaries are removed and no target is touched.
#[derive(Default)]
pub struct Staged {
    /// (temporary, target) pairs, in staging order.
    pending: Vec<(PathBuf, PathBuf)>,
}

impl Staged {
    pub fn new() -> Staged {
        Staged::default()
    }

    /// Write `bytes` to a hidden temporary beside `path` (creating the folder if needed) and sync
    /// it. Staging one target twice is refused: two outputs of one run must not share a file.
    pub fn stage(&mut self, path: &Path, bytes: &[u8]) -> Result<()> {
        if self.pending.iter().any(|(_, p)| p == path) {
            bail!(
                "two outputs of this run would both be written to '{}'",
                path.display()
            );
        }
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
        if let Some(d) = dir {
            std::fs::create_dir_all(d)
                .with_context(|| format!("cannot create '{}'", d.display()))?;
        }
        let name = path
            .file_name()
            .with_context(|| format!("'{}' names no file", path.display()))?;
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".{}.tmp", std::process::id()));
        let tmp: PathBuf = dir.map_or_else(|| PathBuf::from(&tmp_name), |d| d.join(&tmp_name));
        let result = (|| -> Result<()> {
            let mut f = std::fs::File::create(&tmp)
                .with_context(|| format!("cannot create '{}'", tmp.display()))?;
            write_limited(&mut f, bytes)
                .with_context(|| format!("cannot write '{}'", tmp.display()))?;
            f.sync_all()
                .with_context(|| format!("cannot sync '{}'", tmp.display()))
        })();
        match result {
            Ok(()) => {
                self.pending.push((tmp, path.to_path_buf()));
                Ok(())
            }
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                Err(e)
            }
        }
    }

    /// Rename every temporary over its target. A rename needs no space, so once staging
    /// succeeded this does not fail in practice; if one does, the rest are removed.
    pub fn commit(mut self) -> Result<()> {
        let pending = std::mem::take(&mut self.pending);
        let mut it = pending.into_iter();
        while let Some((tmp, path)) = it.next() {
            if let Err(e) = std::fs::rename(&tmp, &path) {
                let _ = std::fs::remove_file(&tmp);
                for (t, _) in it {
                    let _ = std::fs::remove_file(t);
                }
                return Err(e).with_context(|| {
                    format!("cannot rename '{}' to '{}'", tmp.display(), path.display())
                });
            }
        }
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        for (tmp, _) in &self.pending {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

/// Write `bytes` to `path` atomically, creating the parent folder if needed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut s = Staged::new();
    s.stage(path, bytes)?;
    s.commit()
}

/// Whether `a` and `b` name one file: the same device and inode where both exist (so symlinks,
/// hard links, `./` and absolute spellings are all caught), else the same canonical path.
pub fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let (Ok(x), Ok(y)) = (std::fs::metadata(a), std::fs::metadata(b)) {
            return x.dev() == y.dev() && x.ino() == y.ino();
        }
    }
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_file_and_leaves_no_temporary() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub").join("x.csv");
        write_atomic(&p, b"one\n").unwrap();
        write_atomic(&p, b"two\n").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "two\n");
        let names: Vec<_> = std::fs::read_dir(p.parent().unwrap()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn failure_keeps_the_old_file() {
        let d = tempfile::tempdir().unwrap();
        // A folder where the file should be: the rename fails, the folder stays, no temporary left.
        let p = d.path().join("taken");
        std::fs::create_dir(&p).unwrap();
        std::fs::write(p.join("keep"), "x").unwrap();
        assert!(write_atomic(&p, b"new").is_err());
        assert!(p.join("keep").exists());
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn staged_files_appear_only_on_commit_and_vanish_when_dropped() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("a.json"), d.path().join("b.json"));
        std::fs::write(&a, "old").unwrap();
        let mut s = Staged::new();
        s.stage(&a, b"new a").unwrap();
        s.stage(&b, b"new b").unwrap();
        assert_eq!(std::fs::read_to_string(&a).unwrap(), "old");
        assert!(!b.exists());
        drop(s);
        assert_eq!(std::fs::read_to_string(&a).unwrap(), "old");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
        let mut s = Staged::new();
        s.stage(&a, b"new a").unwrap();
        assert!(s.stage(&a, b"again").is_err(), "one target staged twice");
        s.stage(&b, b"new b").unwrap();
        s.commit().unwrap();
        assert_eq!(std::fs::read_to_string(&a).unwrap(), "new a");
        assert_eq!(std::fs::read_to_string(&b).unwrap(), "new b");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 2);
    }

    #[test]
    fn same_file_sees_through_symlinks_and_dot_segments() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a.csv");
        std::fs::write(&a, "x").unwrap();
        let link = d.path().join("link.csv");
        std::os::unix::fs::symlink(&a, &link).unwrap();
        assert!(same_file(&a, &link));
        assert!(same_file(&a, &d.path().join(".").join("a.csv")));
        assert!(!same_file(&a, &d.path().join("b.csv")));
    }
}
