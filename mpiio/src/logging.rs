//! The library's logging: `tracing` events on stderr, filtered by `RUST_LOG` (default `warn`),
//! every line prefixed with `[brlock-mpiio rank N] `. Installed once, at the first intercepted
//! call (MPI is initialised by then); a program that installed its own subscriber keeps it.

use std::io::Write;
use std::sync::Once;

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// Installs the subscriber the first time it is called, with `rank` in every line.
pub(crate) fn init(rank: impl FnOnce() -> i32) {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let prefix = format!("[brlock-mpiio rank {}] ", rank());
        let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(false)
            .with_writer(Prefixed { prefix })
            .try_init();
    });
}

/// Makes one [`Line`] per event.
struct Prefixed {
    prefix: String,
}

impl<'a> MakeWriter<'a> for Prefixed {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Line<'a> {
        Line {
            prefix: &self.prefix,
            text: Vec::new(),
        }
    }
}

/// One event's text, written to stderr after the prefix in one piece when it is dropped, so
/// that ranks' lines do not interleave.
struct Line<'a> {
    prefix: &'a str,
    text: Vec<u8>,
}

impl Write for Line<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.text.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line<'_> {
    fn drop(&mut self) {
        let mut out = Vec::with_capacity(self.prefix.len() + self.text.len());
        out.extend_from_slice(self.prefix.as_bytes());
        out.append(&mut self.text);
        let _ = std::io::stderr().lock().write_all(&out);
    }
}
