//! A progress bar (count and rate) for long `--count` runs, on stderr, and
//! only when stdout is a terminal: piped output stays exactly the messages.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use std::io::IsTerminal;

/// Runs shorter than this show no bar: they are over before it would help.
pub const PROGRESS_MIN_COUNT: u64 = 100;

/// A bar, or nothing.
pub struct Progress(Option<ProgressBar>);

impl Progress {
    /// A bar for `count` messages of `what` ("sent", "received"), when
    /// the run is long and stdout is a terminal.
    pub fn new(count: Option<u64>, what: &str) -> Progress {
        let Some(n) = count.filter(|&n| n >= PROGRESS_MIN_COUNT) else {
            return Progress(None);
        };
        if !std::io::stdout().is_terminal() {
            return Progress(None);
        }
        let bar = ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template(
            "{msg} {pos}/{len} [{bar:30}] {rate} elapsed {elapsed} eta {eta}",
        ) {
            let style = style
                .with_key(
                    "rate",
                    |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                        let _ = write!(w, "{:.0} msg/s", state.per_sec());
                    },
                )
                .progress_chars("=> ");
            bar.set_style(style);
        }
        bar.set_message(what.to_owned());
        Progress(Some(bar))
    }

    /// One more message.
    pub fn inc(&self) {
        if let Some(bar) = &self.0 {
            bar.inc(1);
        }
    }

    /// Runs `f` (which writes to the terminal) with the bar out of the way.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        match &self.0 {
            Some(bar) => bar.suspend(f),
            None => f(),
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}
