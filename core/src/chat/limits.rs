//! Bounds on rendering a chat template. A template is code that arrives inside a model file (or
//! from a caller), so a render must end, in bounded time and output, whatever the template
//! says: a step budget (minijinja's fuel), a cap on the prompt it writes, a recursion limit,
//! caps on the size arguments of uml's own filters, and the caller's cancel token, checked at
//! every write.
//!
//! Every real template fits well inside these: a 10,000-message conversation renders through
//! the SmolLM2, Llama 3, Gemma and Mistral templates in ~10 ms each here (a test renders it), real
//! templates recurse a few levels at most (tool schemas), and they write ~100 bytes of markup
//! per message around the caller's text.
//!
//! What fuel cannot bound: a template that doubles a string in a loop or through macro
//! recursion allocates 2^n bytes in n steps, inside minijinja, which has no hook on string
//! building. The output cap stops it as soon as such a string is written.

use std::io;

use crate::cancel::CancelToken;

/// Steps (minijinja instructions) one render may take: about half a second of work on one
/// core, so a template that loops without writing (where the cancel token is not checked)
/// still ends promptly.
pub const RENDER_FUEL: u64 = 20_000_000;

/// Bytes of markup a render may write beside the caller's own text (message contents and
/// tools): the cap is this plus twice the caller's bytes, since a template may write a text
/// twice (a system prompt repeated in the first turn).
pub const RENDER_OUTPUT_BASE: usize = 16 << 20;

/// minijinja's recursion counter (a macro call or include counts ~10, a nested block 1). Real
/// templates nest a few levels (tool schemas); at this limit endless recursion stops on a
/// thread with a 512 KiB stack (tested).
pub const RENDER_RECURSION_LIMIT: usize = 64;

/// Deepest value `tojson` writes: deeper than any real tool schema, shallow enough for the
/// recursive writer on any thread.
pub const TOJSON_MAX_DEPTH: usize = 128;

/// Longest text one `tojson` writes: far beyond any tool list, short enough to build in well
/// under a second.
pub const TOJSON_MAX_BYTES: usize = 16 << 20;

/// Widest indent `tojson(indent=)` and `indent(width)` accept (real templates use 2 or 4).
pub const MAX_INDENT: usize = 64;

/// Why a render stopped early, recorded by [`CappedOutput`] so the error can say so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    Cancelled,
    TooLong(usize),
}

/// The sink a render writes to: stops the render when the cap is passed or the caller
/// cancels.
pub(crate) struct CappedOutput<'a> {
    pub buf: Vec<u8>,
    cap: usize,
    cancel: Option<&'a CancelToken>,
    pub stopped: Option<Stop>,
}

impl<'a> CappedOutput<'a> {
    pub fn new(caller_bytes: usize, cancel: Option<&'a CancelToken>) -> Self {
        CappedOutput {
            buf: Vec::new(),
            cap: output_cap(caller_bytes),
            cancel,
            stopped: None,
        }
    }
}

/// The output cap for a render whose messages and tools hold `caller_bytes`.
pub(crate) fn output_cap(caller_bytes: usize) -> usize {
    RENDER_OUTPUT_BASE.saturating_add(caller_bytes.saturating_mul(2))
}

impl io::Write for CappedOutput<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if self.cancel.is_some_and(CancelToken::is_cancelled) {
            self.stopped = Some(Stop::Cancelled);
            return Err(io::Error::other("cancelled"));
        }
        if self.buf.len().saturating_add(bytes.len()) > self.cap {
            self.stopped = Some(Stop::TooLong(self.cap));
            return Err(io::Error::other("output cap"));
        }
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
