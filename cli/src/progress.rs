//! Progress of long operations (demo, bench, check): one line on stderr, overwritten in
//! place, only when stderr is a terminal, so piped output stays as it was.

use std::io::{IsTerminal, Write};

/// A progress line on stderr, overwritten in place, shown only when stderr is a
/// terminal: piped output stays as it was.
pub struct Progress {
    terminal: bool,
    shown: bool,
}

impl Progress {
    /// A progress line on stderr, if it is a terminal.
    pub fn new() -> Self {
        Self {
            terminal: std::io::stderr().is_terminal(),
            shown: false,
        }
    }

    /// Replaces the line with `text`.
    pub fn show(&mut self, text: &str) {
        if self.terminal {
            // \x1b[K clears what a longer previous text left.
            eprint!("\r{text}\x1b[K");
            let _ = std::io::stderr().flush();
            self.shown = true;
        }
    }

    /// Removes the line.
    pub fn clear(&mut self) {
        if self.shown {
            eprint!("\r\x1b[K");
            self.shown = false;
        }
    }
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.clear();
    }
}
