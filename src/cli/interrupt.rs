//! Ctrl-C: the first one cancels the running job (which stops between units
//! of work and removes its temporary files); a second one removes every
//! pending temporary file and exits at once.

use std::sync::OnceLock;

use quantmix::job::Cancel;

static TOKEN: OnceLock<Cancel> = OnceLock::new();

/// Install the handler (once) and return the shared token.
pub fn install() -> Cancel {
    TOKEN
        .get_or_init(|| {
            let token = Cancel::new();
            let t = token.clone();
            // If a handler cannot be installed, Ctrl-C keeps its default effect
            // (the temporary output file is then left behind by the OS kill).
            let _ = ctrlc::set_handler(move || {
                if t.is_cancelled() {
                    quantmix::fsutil::remove_pending();
                    std::process::exit(130);
                }
                t.cancel();
            });
            token
        })
        .clone()
}

/// Whether Ctrl-C was pressed.
pub fn triggered() -> bool {
    TOKEN.get().is_some_and(Cancel::is_cancelled)
}
