//! The command line's [`Progress`]: an indicatif bar on a terminal; when
//! stderr is not a terminal (batch jobs, logs), a line every 30 seconds
//! instead. Notes are printed above the bar (`--quiet` keeps warnings only).

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use quantmix::job::{Level, Progress, Unit};

/// How often a line is logged without a terminal.
const LOG_EVERY: Duration = Duration::from_secs(30);

pub struct Bar {
    bar: ProgressBar,
    /// Hide [`Level::Info`] notes.
    quiet_notes: bool,
    /// Log lines instead of drawing (stderr is not a terminal).
    lines: bool,
    state: Mutex<State>,
}

struct State {
    stage: String,
    unit: Unit,
    started: Instant,
    last_line: Instant,
}

impl Bar {
    /// `quiet`: no bar, and only warnings among the notes.
    pub fn new(quiet: bool) -> Bar {
        Bar { quiet_notes: quiet, ..Bar::bars_only(quiet) }
    }

    /// `quiet`: no bar; every note is still shown (the commands whose
    /// `--quiet` only ever hid the bar).
    pub fn bars_only(quiet: bool) -> Bar {
        let target = if quiet { ProgressDrawTarget::hidden() } else { ProgressDrawTarget::stderr_with_hz(8) };
        let now = Instant::now();
        Bar {
            bar: ProgressBar::with_draw_target(Some(0), target),
            quiet_notes: false,
            lines: !quiet && !std::io::stderr().is_terminal(),
            state: Mutex::new(State { stage: String::new(), unit: Unit::Steps, started: now, last_line: now }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn log_line(&self, st: &State) {
        let (pos, len) = (self.bar.position(), self.bar.length().unwrap_or(0));
        let el = st.started.elapsed().as_secs_f64();
        let eta = if pos > 0 && len > pos { el / pos as f64 * (len - pos) as f64 } else { 0.0 };
        let (p, l) = match st.unit {
            Unit::Bytes => (indicatif::HumanBytes(pos).to_string(), indicatif::HumanBytes(len).to_string()),
            Unit::Steps => (pos.to_string(), len.to_string()),
        };
        eprintln!("{}: {p}/{l}, {el:.0} s, ETA {eta:.0} s", st.stage);
    }
}

fn style(unit: Unit) -> ProgressStyle {
    let template = match unit {
        Unit::Steps => "{prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed}, ETA {eta})",
        Unit::Bytes => "{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {msg} (ETA {eta})",
    };
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()).progress_chars("=> ")
}

impl Progress for Bar {
    fn stage(&self, name: &str, total: u64, unit: Unit) {
        self.bar.reset();
        self.bar.set_style(style(unit));
        self.bar.set_length(total);
        self.bar.set_prefix(name.to_string());
        self.bar.set_message("");
        let now = Instant::now();
        *self.state() = State { stage: name.to_string(), unit, started: now, last_line: now };
    }

    fn item(&self, what: &str) {
        self.bar.set_message(what.to_string());
    }

    fn advance(&self, n: u64) {
        self.bar.inc(n);
        if self.lines {
            let mut st = self.state();
            let done = self.bar.length().is_some_and(|l| self.bar.position() >= l);
            if st.last_line.elapsed() >= LOG_EVERY || done {
                st.last_line = Instant::now();
                self.log_line(&st);
            }
        }
    }

    fn note(&self, level: Level, line: &str) {
        if level == Level::Warning || !self.quiet_notes {
            self.bar.suspend(|| eprintln!("{line}"));
        }
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
