//! Opening the files a model path names. Only regular files are read: opening a FIFO for
//! reading blocks until a writer comes (a host that hangs), and a device can stream forever.
//! Every read of a JSON, template or tokenizer file is capped, so a hostile folder cannot make
//! uml allocate without limit.

use std::fs::{File, Metadata};
use std::io::Read;
use std::path::Path;

use crate::{Error, Result};

/// The largest JSON file uml reads (configs and indexes are KBs; the largest tokenizer.json
/// files, 256k-token vocabularies with their merges, are about 35 MB).
pub(crate) const MAX_JSON_BYTES: u64 = 64 << 20;
/// The largest chat template file uml reads (real ones are at most tens of KB).
pub(crate) const MAX_TEMPLATE_BYTES: u64 = 1 << 20;

/// What kind of non-regular file `meta` describes, for the error.
fn kind_of(meta: &Metadata) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let ft = meta.file_type();
        if ft.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if ft.is_socket() {
            return "a socket";
        }
        if ft.is_block_device() || ft.is_char_device() {
            return "a device";
        }
    }
    if meta.is_dir() {
        "a folder"
    } else {
        "not a regular file"
    }
}

fn not_regular(path: &Path, meta: &Metadata) -> Error {
    Error::invalid_argument(format!(
        "{} is {}, not a regular file; uml reads models only from regular files (reading a \
         FIFO blocks until someone writes to it, a device may never end)",
        path.display(),
        kind_of(meta)
    ))
}

/// Err unless `path` (following symlinks) is a regular file, checked without opening it.
#[cfg_attr(not(feature = "candle"), allow(dead_code))]
pub(crate) fn check_regular(path: &Path) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_file() {
        Ok(())
    } else {
        Err(not_regular(path, &meta))
    }
}

/// Open `path` for reading if it is a regular file. The open itself cannot block: it is
/// non-blocking, and the file's type is checked on the open handle, so a FIFO swapped in after
/// a check is still refused.
pub(crate) fn open_regular(path: &Path) -> Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path).map_err(|e| Error::io(path, e))?;
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(not_regular(path, &meta));
    }
    Ok(file)
}

/// The bytes of the regular file `path` (`what` names it in errors), refusing one larger than
/// `cap` bytes, even one that grows while it is read.
pub(crate) fn read_capped(path: &Path, cap: u64, what: &str) -> Result<Vec<u8>> {
    let file = open_regular(path)?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let too_big = |len: u64| {
        Error::invalid_model(format!(
            "{} is {len} bytes, larger than the {cap} bytes uml reads for {what} (is it the \
             right file?)",
            path.display()
        ))
    };
    if len > cap {
        return Err(too_big(len));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 > cap {
        return Err(too_big(bytes.len() as u64));
    }
    Ok(bytes)
}

/// A JSON file of at most [`MAX_JSON_BYTES`].
pub(crate) fn read_json(path: &Path) -> Result<serde_json::Value> {
    let bytes = read_capped(path, MAX_JSON_BYTES, "a JSON file")?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::invalid_model(format!("{} is not valid JSON: {e}", path.display())))
}

#[cfg(all(test, unix))]
pub(crate) mod tests {
    use super::*;
    use crate::ErrorKind;

    /// Make a FIFO at `path` (nobody ever writes to it).
    pub(crate) fn mkfifo(path: &Path) {
        use std::os::unix::ffi::OsStrExt;
        let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
        // SAFETY: `c` is a valid NUL-terminated path that outlives the call.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    }

    /// Run `f` on another thread and fail (instead of hanging the suite) if it blocks.
    pub(crate) fn within_seconds<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(f());
        });
        rx.recv_timeout(std::time::Duration::from_secs(10))
            .expect("blocked on a non-regular file")
    }

    #[test]
    fn fifos_and_devices_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("model.gguf");
        mkfifo(&fifo);
        let e = within_seconds(move || read_capped(&fifo, 10, "a test").unwrap_err());
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
        assert!(e.message().contains("FIFO"), "{e}");
        let e = read_capped(Path::new("/dev/zero"), 10, "a test").unwrap_err();
        assert!(e.message().contains("a device"), "{e}");
        let e = check_regular(dir.path()).unwrap_err();
        assert!(e.message().contains("a folder"), "{e}");
    }

    #[test]
    fn a_fifo_anywhere_in_a_model_is_an_error_not_a_hang() {
        let dir = tempfile::tempdir().unwrap();
        // The model path itself.
        let fifo = dir.path().join("model.gguf");
        mkfifo(&fifo);
        let e = within_seconds(move || crate::inspect::inspect(&fifo).unwrap_err());
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
        // A folder's weights: inspect reports no weights, loading names the FIFO.
        #[cfg(feature = "candle")]
        {
            let folder = dir.path().join("hf");
            uml_test_support::write_tiny_hf_folder(&folder).unwrap();
            std::fs::remove_file(folder.join("model.safetensors")).unwrap();
            mkfifo(&folder.join("model.safetensors"));
            let e = within_seconds(move || {
                crate::Model::load(&folder, &crate::LoadOptions::default(), None).unwrap_err()
            });
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
            assert!(e.message().contains("model.safetensors"), "{e}");
        }
    }

    #[test]
    fn reads_are_capped() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big.json");
        std::fs::write(&p, vec![b' '; 100]).unwrap();
        let e = read_capped(&p, 99, "a test file").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidModel, "{e}");
        assert!(
            e.message().contains("100 bytes") && e.message().contains("99"),
            "{e}"
        );
        assert_eq!(read_capped(&p, 100, "a test file").unwrap().len(), 100);
    }
}
