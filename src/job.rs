//! What every long-running job shares: one cancellation token, one
//! progress trait, one interrupted error and one way to size the thread
//! pool.
//!
//! The library never draws anything: a job reports through a
//! [`Progress`] it is handed (the command line draws bars with it; tests
//! and library users pass [`NoProgress`] or their own), and polls a
//! [`Cancel`] token between units of work, ending with [`Interrupted`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The work was cancelled (Ctrl-C, SIGTERM, SIGHUP, or a caller's
/// [`Cancel::cancel`]). Every error enum of the library wraps this one
/// type, so that a caller recognises an interruption with one check
/// ([`is_interrupted`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("interrupted")]
pub struct Interrupted;

/// A cancellation token: cheap to clone, shared by every part of a job.
#[derive(Clone, Debug, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// A token nobody has cancelled yet.
    pub fn new() -> Cancel {
        Cancel::default()
    }

    /// Ask every holder of this token to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether [`Cancel::cancel`] was called.
    #[inline]
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// `Err(Interrupted)` once cancelled: `cancel.check()?` between units
    /// of work.
    #[inline]
    pub fn check(&self) -> Result<(), Interrupted> {
        if self.is_cancelled() {
            Err(Interrupted)
        } else {
            Ok(())
        }
    }
}

/// What a progress counter counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Steps of work (chunks, candidates, tensors).
    Steps,
    /// Bytes of data.
    Bytes,
}

/// How much a [`Progress::note`] matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// Information the user may skip (`--quiet` hides it).
    Info,
    /// Something the user should know (always shown).
    Warning,
}

/// Where a job reports how far it is, between units of work (from any
/// one thread at a time).
pub trait Progress: Sync {
    /// A new stage of `total` units (0: unknown) begins; `name` says what it is.
    fn stage(&self, name: &str, total: u64, unit: Unit);
    /// What the stage works on now (a tensor name, a file).
    fn item(&self, what: &str);
    /// `n` more units of the stage are done.
    fn advance(&self, n: u64);
    /// A line for the user, shown above any bar.
    fn note(&self, level: Level, line: &str);
    /// The stage is over (its bar disappears).
    fn finish(&self);
}

/// A [`Progress`] that shows nothing (library use, tests, `--quiet`).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn stage(&self, _: &str, _: u64, _: Unit) {}
    fn item(&self, _: &str) {}
    fn advance(&self, _: u64) {}
    fn note(&self, _: Level, _: &str) {}
    fn finish(&self) {}
}

/// What a job needs besides its own settings: cancellation, progress and
/// the number of worker threads.
#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    pub cancel: &'a Cancel,
    pub progress: &'a dyn Progress,
    /// Worker threads (0: one per core).
    pub threads: usize,
}

impl<'a> Ctx<'a> {
    /// A context that cannot be cancelled from outside and shows nothing
    /// (for library callers and tests).
    pub fn quiet(cancel: &'a Cancel) -> Ctx<'a> {
        Ctx { cancel, progress: &NoProgress, threads: 0 }
    }

    /// The same context with `threads` worker threads.
    pub fn with_threads(self, threads: usize) -> Ctx<'a> {
        Ctx { threads, ..self }
    }

    /// Run `work` on a rayon pool of [`Ctx::threads`] threads (the global
    /// pool when 0).
    pub fn install<R: Send>(&self, work: impl FnOnce() -> R + Send) -> Result<R, ThreadPoolError> {
        if self.threads == 0 {
            return Ok(work());
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(self.threads)
            .build()
            .map_err(|e| ThreadPoolError(e.to_string()))?;
        Ok(pool.install(work))
    }
}

/// The worker thread pool could not be created.
#[derive(Debug, thiserror::Error)]
#[error("cannot create the thread pool: {0}")]
pub struct ThreadPoolError(pub String);

/// Whether `e` or one of its causes is [`Interrupted`].
pub fn is_interrupted(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cur {
        if c.is::<Interrupted>() {
            return true;
        }
        cur = c.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    enum Outer {
        #[error("interrupted")]
        Interrupted(#[from] Interrupted),
        #[error("other")]
        Other,
    }

    #[test]
    fn cancel_is_shared_and_checked() {
        let c = Cancel::new();
        let d = c.clone();
        assert!(c.check().is_ok());
        d.cancel();
        assert_eq!(c.check(), Err(Interrupted));
    }

    #[test]
    fn interruption_is_found_through_wrapping_errors() {
        let e = Outer::from(Interrupted);
        assert!(is_interrupted(&e));
        assert!(!is_interrupted(&Outer::Other));
    }
}
