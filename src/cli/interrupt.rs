//! Ctrl-C: the first one sets a flag that long-running work polls (the
//! writer then removes its temporary file); a second one exits at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// Install the handler (once) and return the shared flag.
pub fn install() -> Arc<AtomicBool> {
    FLAG.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        let f = flag.clone();
        // If a handler cannot be installed, Ctrl-C keeps its default effect
        // (the temporary output file is then left behind by the OS kill).
        let _ = ctrlc::set_handler(move || {
            if f.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
        });
        flag
    })
    .clone()
}

/// Whether Ctrl-C was pressed.
pub fn triggered() -> bool {
    FLAG.get().is_some_and(|f| f.load(Ordering::SeqCst))
}
