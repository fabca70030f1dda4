//! Encrypted output files: plaintext → SHA-256 → age → SHA-256 → a temporary file in the
//! output directory, renamed into place only when the whole release succeeded.
//!
//! The plaintext exists only in memory, a chunk at a time (age encrypts 64 KiB chunks); the
//! temporary file holds ciphertext only and is deleted when dropped, so an error or a panic
//! anywhere leaves no partial file (a killed process leaves a hidden `.…tmp` file of
//! ciphertext; see the module docs).

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use aws_lc_rs::digest;
use tempfile::TempPath;

use super::recipient::RecipientKey;

/// Counts and hashes every byte that passes through to `inner`.
pub(crate) struct Digesting<W> {
    inner: W,
    ctx: digest::Context,
    bytes: u64,
}

impl<W> Digesting<W> {
    pub(crate) fn new(inner: W) -> Self {
        Self {
            inner,
            ctx: digest::Context::new(&digest::SHA256),
            bytes: 0,
        }
    }

    /// The inner writer, the SHA-256 and the byte count of what was written.
    pub(crate) fn finish(self) -> (W, [u8; 32], u64) {
        let mut sha = [0u8; 32];
        sha.copy_from_slice(self.ctx.finish().as_ref());
        (self.inner, sha, self.bytes)
    }
}

impl<W: Write> Write for Digesting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        // Only what the inner writer took is counted and hashed.
        let taken = buf.get(..n).unwrap_or(buf);
        self.ctx.update(taken);
        self.bytes = self.bytes.saturating_add(n as u64);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The writer a table or NDJSON encoder writes plaintext into.
pub(crate) type PlainSink = Digesting<age::stream::StreamWriter<Digesting<File>>>;

/// An encrypted file being written: its temporary path (deleted if dropped) and its name.
pub(crate) struct Pending {
    pub(crate) temp: TempPath,
    pub(crate) name: String,
}

/// What one finished encrypted file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sealed {
    pub(crate) sha256: [u8; 32],
    pub(crate) bytes: u64,
    pub(crate) plaintext_sha256: [u8; 32],
    pub(crate) plaintext_bytes: u64,
}

/// Opens a temporary file in `dir` and an age stream to `recipient` over it.
pub(crate) fn open(
    dir: &Path,
    name: &str,
    recipient: &RecipientKey,
) -> Result<(Pending, PlainSink), SinkError> {
    let temp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(SinkError::Io)?;
    let (file, temp) = temp.into_parts();
    let encryptor =
        age::Encryptor::with_recipients(std::iter::once(recipient.age() as &dyn age::Recipient))
            .map_err(|e| SinkError::Encrypt(Box::new(e)))?;
    let stream = encryptor
        .wrap_output(Digesting::new(file))
        .map_err(SinkError::Io)?;
    Ok((
        Pending {
            temp,
            name: name.to_owned(),
        },
        Digesting::new(stream),
    ))
}

/// Ends the age stream (its last chunk), flushes the file to disk and returns the hashes.
pub(crate) fn seal(sink: PlainSink) -> io::Result<Sealed> {
    let (stream, plaintext_sha256, plaintext_bytes) = sink.finish();
    let file = stream.finish()?;
    let (mut file, sha256, bytes) = file.finish();
    file.flush()?;
    file.sync_all()?;
    Ok(Sealed {
        sha256,
        bytes,
        plaintext_sha256,
        plaintext_bytes,
    })
}

/// Why an encrypted file could not be opened.
#[derive(Debug)]
pub(crate) enum SinkError {
    Io(io::Error),
    Encrypt(Box<age::EncryptError>),
}

/// Renames each pending file to its final name in `dir`, refusing to replace anything; on
/// a failure the files already renamed are removed again, so the release appears whole or
/// not at all (short of a crash between two renames).
pub(crate) fn persist_all(dir: &Path, files: Vec<Pending>) -> Result<(), (String, io::Error)> {
    let mut done: Vec<PathBuf> = Vec::with_capacity(files.len());
    for pending in files {
        let target = dir.join(&pending.name);
        if let Err(e) = pending.temp.persist_noclobber(&target) {
            for path in &done {
                // Best effort: the error reported is the one that stopped the release.
                let _ = std::fs::remove_file(path);
            }
            // Dropping the error's TempPath deletes that temporary file.
            return Err((pending.name, e.error));
        }
        done.push(target);
    }
    // Make the renames durable.
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| (".".to_owned(), e))
}

/// Lower-case hexadecimal.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// SHA-256 of a byte string.
pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, bytes).as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digesting_counts_and_hashes_what_passes() {
        let mut d = Digesting::new(Vec::new());
        d.write_all(b"ab").unwrap();
        d.write_all(b"c").unwrap();
        let (inner, sha, n) = d.finish();
        assert_eq!(inner, b"abc");
        assert_eq!(n, 3);
        assert_eq!(
            hex(&sha),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(sha, sha256(b"abc"));
    }
}
