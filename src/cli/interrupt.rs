//! One signal policy for every command: SIGINT (Ctrl-C), SIGTERM and SIGHUP.
//!
//! - A command that polls the job's [`Cancel`] token (quantize, convert,
//!   export-hf, eval, imatrix, sensitivity): the first signal cancels it; the
//!   job stops between units of work and drops its temporary files, and the
//!   process exits with 128 + the signal number (130 for SIGINT, 143 for
//!   SIGTERM, 129 for SIGHUP).
//! - A command that does not poll (inspect, recipe, plan, bench), and any
//!   second signal: every pending temporary file and directory is removed
//!   and the process exits at once with 128 + that signal's number.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::OnceLock;

use quantmix::job::Cancel;

static TOKEN: OnceLock<Cancel> = OnceLock::new();
/// The first signal received (0: none).
static FIRST: AtomicI32 = AtomicI32::new(0);

/// What a signal does: the first one cancels `token` when the command polls
/// it (`cancellable`); otherwise, and for a second one, clean up and exit.
fn on_signal(sig: i32, token: &Cancel, cancellable: bool) {
    let first = FIRST.compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst).is_ok();
    if first && cancellable {
        token.cancel();
    } else {
        quantmix::fsutil::remove_pending_and_exit(128 + sig);
    }
}

/// Install the handler (once) and return the shared token. `cancellable`:
/// whether the command polls the token.
pub fn install(cancellable: bool) -> Cancel {
    TOKEN
        .get_or_init(|| {
            let token = Cancel::new();
            listen(token.clone(), cancellable);
            token
        })
        .clone()
}

#[cfg(unix)]
fn listen(token: Cancel, cancellable: bool) {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    // If the handler cannot be installed, the signals keep their default
    // effect (a temporary output file is then left behind by the kill).
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) else { return };
    // The signals are handled on this thread, outside signal context: it
    // may lock, remove files and exit.
    let _ = std::thread::Builder::new().name("signals".into()).spawn(move || {
        for sig in signals.forever() {
            on_signal(sig, &token, cancellable);
        }
    });
}

#[cfg(not(unix))]
fn listen(token: Cancel, cancellable: bool) {
    // Ctrl-C (and Ctrl-Break / console close) only; reported as SIGINT.
    let _ = ctrlc::set_handler(move || on_signal(2, &token, cancellable));
}

/// The exit code for the signal received, if one was (128 + its number).
pub fn exit_code() -> Option<i32> {
    match FIRST.load(Ordering::SeqCst) {
        0 => None,
        s => Some(128 + s),
    }
}
