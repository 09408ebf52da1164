//! One line per message on stderr, prefixed with the program name, because
//! stderr of `archive_command`/`restore_command` lands in the database server log.

use std::fmt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

/// How much to say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verbosity {
    /// Errors only.
    Quiet,
    /// Errors, warnings and notable events (the default).
    Normal,
    /// Everything, including what each step did.
    Verbose,
}

struct OneLine {
    program: &'static str,
}

impl<S, N> FormatEvent<S, N> for OneLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let level = match *event.metadata().level() {
            Level::ERROR => "error: ",
            Level::WARN => "warning: ",
            _ => "",
        };
        let mut text = String::new();
        ctx.field_format()
            .format_fields(Writer::new(&mut text), event)?;
        writeln!(w, "{}: {level}{}", self.program, one_line(&text))
    }
}

/// `text` on one line: a storage error may carry the store's multi-line
/// answer (an XML body), and each line of stderr is a line of the server log.
fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Installs the stderr logger; call once, first thing in `main`.
pub fn init(program: &'static str, verbosity: Verbosity) {
    let max = match verbosity {
        Verbosity::Quiet => Level::ERROR,
        Verbosity::Normal => Level::INFO,
        Verbosity::Verbose => Level::DEBUG,
    };
    // Our own messages only, unless verbose: the storage client's retry notes would
    // otherwise add lines to the server log for every hiccup that succeeded anyway.
    let targets = match verbosity {
        Verbosity::Verbose => Targets::new().with_default(max),
        _ => Targets::new().with_target("uxwal", max),
    };
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .event_format(OneLine { program }),
        )
        .with(targets)
        .try_init();
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_multi_line_message_becomes_one_line() {
        let xml = "cannot read FORMAT: 404: <?xml version=\"1.0\"?>\r\n<Error>\n  <Code>NoSuchBucket</Code>\n</Error>\n";
        assert_eq!(
            super::one_line(xml),
            "cannot read FORMAT: 404: <?xml version=\"1.0\"?> <Error> <Code>NoSuchBucket</Code> </Error>"
        );
    }
}
