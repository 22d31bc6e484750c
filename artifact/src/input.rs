//! Reading an input file the way every d4c tool reads one: only a regular
//! file, and at most a bound of bytes.
//!
//! A FIFO blocks its reader until a writer comes (for good, if none
//! does); `/dev/zero` or a sparse file never ends or costs gigabytes.
//! Policies, artifacts, keys, configurations, bundles and queue segments
//! are regular files of bounded size, so anything else is refused with an
//! error that says what the path is, before a byte is read.
//!
//! The errors are `io::Error`s (kind `InvalidInput` for a file that is not
//! regular, `InvalidData` for one over the bound), so that callers keep
//! their own "cannot read `PATH`: ..." messages.

use std::fs::{File, FileType};
use std::io::{self, Read};
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

/// What a file type is, for an error message.
fn describe(kind: FileType) -> &'static str {
    if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a file"
    }
}

fn not_regular(kind: FileType) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, format!("not a regular file ({})", describe(kind)))
}

/// Opens `path` (symbolic links followed) for reading if it is a regular
/// file. Its type is checked before the open (which would block on a
/// FIFO) and again on the open file (the path may have changed between).
pub fn open_regular(path: &Path) -> io::Result<File> {
    let kind = std::fs::metadata(path)?.file_type();
    if !kind.is_file() {
        return Err(not_regular(kind));
    }
    let file = File::open(path)?;
    let kind = file.metadata()?.file_type();
    if !kind.is_file() {
        return Err(not_regular(kind));
    }
    Ok(file)
}

/// Reads at most `limit + 1` bytes of `file`: a caller that reports an
/// oversized input itself sees that it is over the limit.
pub fn read_up_to(file: File, limit: u64) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Reads the regular file at `path` whole, refusing one over `limit`
/// bytes (named in the error).
pub fn read_regular(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    let bytes = read_up_to(open_regular(path)?, limit)?;
    if bytes.len() as u64 > limit {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("larger than {limit} bytes, the limit")));
    }
    Ok(bytes)
}

/// [`read_regular`] as UTF-8 text.
pub fn read_regular_text(path: &Path, limit: u64) -> io::Result<String> {
    String::from_utf8(read_regular(path, limit)?)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("not UTF-8 text: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("d4c-input-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map(|()| dir).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() -> Result<(), String> {
        let dir = scratch("fifo");
        let fifo = dir.join("policy.yaml");
        let status = std::process::Command::new("mkfifo").arg(&fifo).status().map_err(|e| e.to_string())?;
        assert!(status.success());
        let error = read_regular(&fifo, 1024).map(|_| ()).err().ok_or("a FIFO was read")?;
        assert_eq!(error.to_string(), "not a regular file (a FIFO)");
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }

    #[test]
    fn dev_zero_and_a_symlink_to_it_are_refused() -> Result<(), String> {
        let dir = scratch("zero");
        let link = dir.join("config.json");
        std::os::unix::fs::symlink("/dev/zero", &link).map_err(|e| e.to_string())?;
        for path in [Path::new("/dev/zero"), &link] {
            let error = read_regular(path, 1024).map(|_| ()).err().ok_or("/dev/zero was read")?;
            assert_eq!(error.to_string(), "not a regular file (a character device)");
        }
        let error = read_regular(&dir, 1024).map(|_| ()).err().ok_or("a directory was read")?;
        assert_eq!(error.to_string(), "not a regular file (a directory)");
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }

    #[test]
    fn a_file_over_the_bound_is_refused_and_one_at_it_read() -> Result<(), String> {
        let dir = scratch("bound");
        let path = dir.join("a");
        std::fs::write(&path, [7u8; 100]).map_err(|e| e.to_string())?;
        assert_eq!(read_regular(&path, 100).map_err(|e| e.to_string())?.len(), 100);
        let error = read_regular(&path, 99).map(|_| ()).err().ok_or("read over the bound")?;
        assert_eq!(error.to_string(), "larger than 99 bytes, the limit");
        // A sparse file is refused by its length, not read to its end.
        let sparse = std::fs::File::create(dir.join("sparse")).map_err(|e| e.to_string())?;
        sparse.set_len(1 << 40).map_err(|e| e.to_string())?;
        assert!(read_regular(&dir.join("sparse"), 1 << 20).is_err());
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }
}
