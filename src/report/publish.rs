//! Putting a staged report in place all at once.
//!
//! A report is drawn into a staging folder beside `out` (same parent, so the same file system).
//! Once every file is on disk the two folders are swapped in one step (Linux
//! `renameat2(RENAME_EXCHANGE)`): a reader, a kill or a full disk sees the whole old report or the
//! whole new one, never a mix. Files of `out` that the report does not write (notes a user keeps
//! beside it) are hard-linked into the staging folder first, so the swap keeps them. Where the
//! swap is unavailable (another OS, a file system without it, `out` a mount point, or `out` with
//! no name of its own such as `.`), each file is renamed into place instead: each rename is
//! atomic, the set of them is not, and a kill between two renames (after every file is on disk)
//! leaves some figures new and some old, each whole; the next run replaces them all.

use anyhow::{Context, Result};
use std::io;
use std::path::{Path, PathBuf};

/// Where to stage a report for `out`: a hidden sibling when `out` has a name (so the folders can
/// be swapped), else a hidden folder inside `out`.
pub fn stage_dir(out: &Path) -> PathBuf {
    let pid = std::process::id();
    match out.file_name() {
        Some(name) => {
            let parent = out.parent().unwrap_or_else(|| Path::new(""));
            parent.join(format!(".{}.staging.{pid}", name.to_string_lossy()))
        }
        None => out.join(format!(".staging.{pid}")),
    }
}

/// Put everything under `stage` in place under `out`. After a swap the previous report is left at
/// `stage`, for the caller to remove.
pub fn publish(stage: &Path, out: &Path) -> Result<()> {
    if !stage.starts_with(out) {
        keep_foreign(out, stage).with_context(|| {
            format!(
                "keeping the files of '{}' that the report does not write",
                out.display()
            )
        })?;
        match exchange(stage, out) {
            Ok(()) => return Ok(()),
            Err(e) if swap_unavailable(&e) => {}
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("cannot swap '{}' into '{}'", stage.display(), out.display())
                })
            }
        }
    }
    rename_each(stage, out)
}

/// Hard-link (or copy, where links fail) every file of `from` that `to` lacks, recursively.
fn keep_foreign(from: &Path, to: &Path) -> io::Result<()> {
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let (src, dst) = (e.path(), to.join(e.file_name()));
        let kind = e.file_type()?;
        if kind.is_dir() {
            std::fs::create_dir_all(&dst)?;
            keep_foreign(&src, &dst)?;
        } else if std::fs::symlink_metadata(&dst).is_err() {
            if kind.is_symlink() {
                copy_symlink(&src, &dst)?;
            } else if std::fs::hard_link(&src, &dst).is_err() {
                std::fs::copy(&src, &dst)?;
            }
        }
    }
    Ok(())
}

#[cfg(unix)]
fn copy_symlink(src: &Path, dst: &Path) -> io::Result<()> {
    std::os::unix::fs::symlink(std::fs::read_link(src)?, dst)
}

#[cfg(not(unix))]
fn copy_symlink(src: &Path, dst: &Path) -> io::Result<()> {
    std::fs::copy(src, dst).map(|_| ())
}

/// Errors after which renaming file by file is the way left (nothing was changed).
fn swap_unavailable(e: &io::Error) -> bool {
    if e.kind() == io::ErrorKind::Unsupported {
        return true;
    }
    #[cfg(target_os = "linux")]
    if let Some(code) = e.raw_os_error() {
        return [
            libc::EINVAL,
            libc::ENOSYS,
            libc::EXDEV,
            libc::EBUSY,
            libc::EPERM,
        ]
        .contains(&code);
    }
    false
}

/// Swap two folders in one step.
#[cfg(target_os = "linux")]
fn exchange(a: &Path, b: &Path) -> io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| {
        CString::new(p.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path holds a NUL byte"))
    };
    let (ca, cb) = (c(a)?, c(b)?);
    // SAFETY: both pointers are NUL-terminated strings that outlive the call; renameat2 reads
    // them and keeps no reference.
    let r = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn exchange(_a: &Path, _b: &Path) -> io::Result<()> {
    Err(io::ErrorKind::Unsupported.into())
}

/// Move every file under `stage` to the same place under `out`, one rename each.
fn rename_each(stage: &Path, out: &Path) -> Result<()> {
    for e in std::fs::read_dir(stage)? {
        let e = e?;
        let (from, to) = (e.path(), out.join(e.file_name()));
        if e.file_type()?.is_dir() {
            std::fs::create_dir_all(&to)?;
            rename_each(&from, &to)?;
        } else {
            std::fs::rename(&from, &to).with_context(|| {
                format!("cannot move '{}' to '{}'", from.display(), to.display())
            })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(p: &Path, s: &str) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, s).unwrap();
    }

    fn read(p: &Path) -> String {
        std::fs::read_to_string(p).unwrap()
    }

    #[test]
    fn the_new_report_replaces_the_old_and_keeps_foreign_files() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("reports");
        write(&out.join("report.md"), "old");
        write(&out.join("fig1.svg"), "old fig");
        write(&out.join("notes.txt"), "mine");
        write(&out.join("sub/keep.txt"), "mine too");
        let stage = stage_dir(&out);
        assert_eq!(
            stage.parent(),
            out.parent(),
            "a sibling, so the folders can swap"
        );
        write(&stage.join("report.md"), "new");
        write(&stage.join("fig2.svg"), "new fig");
        write(&stage.join("sub/fig.svg"), "new sub");
        publish(&stage, &out).unwrap();
        assert_eq!(read(&out.join("report.md")), "new");
        assert_eq!(read(&out.join("fig2.svg")), "new fig");
        assert_eq!(read(&out.join("sub/fig.svg")), "new sub");
        assert_eq!(read(&out.join("notes.txt")), "mine");
        assert_eq!(read(&out.join("sub/keep.txt")), "mine too");
        // A figure the new report no longer draws is kept, as a foreign file would be.
        assert_eq!(read(&out.join("fig1.svg")), "old fig");
        #[cfg(target_os = "linux")]
        assert_eq!(
            read(&stage.join("report.md")),
            "old",
            "swapped: the old report is at stage"
        );
    }

    #[test]
    fn a_stage_inside_out_is_moved_file_by_file() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().to_path_buf();
        write(&out.join("report.md"), "old");
        let stage = out.join(".staging.test");
        write(&stage.join("report.md"), "new");
        publish(&stage, &out).unwrap();
        assert_eq!(read(&out.join("report.md")), "new");
        assert!(stage.join("report.md").metadata().is_err());
    }

    #[test]
    fn a_nameless_out_stages_inside() {
        assert!(stage_dir(Path::new(".")).starts_with("."));
        assert_eq!(
            stage_dir(Path::new("a/reports")).parent(),
            Some(Path::new("a"))
        );
    }
}
