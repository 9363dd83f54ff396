//! The binary's logging: the library's `tracing` events on stderr, filtered by `RUST_LOG`
//! (default `warn`), every line prefixed with the rank.

use std::fmt;

use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{Format, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// Installs a `tracing` subscriber writing to stderr, filtered by `RUST_LOG` (default
/// `warn`), with every line prefixed by `[rank N] `. Does nothing if one is installed already.
pub fn init(rank: i32) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .event_format(RankPrefix {
            rank,
            inner: Format::default().with_ansi(false),
        })
        .try_init();
}

/// Writes `[rank N] ` and then the event as `inner` formats it.
struct RankPrefix<F> {
    rank: i32,
    inner: F,
}

impl<S, N, F> FormatEvent<S, N> for RankPrefix<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        write!(writer, "[rank {}] ", self.rank)?;
        self.inner.format_event(ctx, writer, event)
    }
}
