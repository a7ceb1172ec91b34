//! Standard output and error, written without ever panicking. A reader that goes away
//! (`amiplan apply | head -3`) must not abort a run half way or leave its lock behind: what it no
//! longer reads is dropped, the run finishes, and the exit code is the run's own.

use std::io::Write;

/// Writes `text` to standard output; a closed or failing stdout is ignored.
pub fn write_out(text: &str) {
    write(&mut std::io::stdout().lock(), text);
}

/// Writes `text` to standard error; a closed or failing stderr is ignored.
pub fn write_err(text: &str) {
    write(&mut std::io::stderr().lock(), text);
}

fn write(stream: &mut impl Write, text: &str) {
    let _ = stream.write_all(text.as_bytes()).and_then(|()| stream.flush());
}

/// `print!` that never panics.
macro_rules! out {
    ($($arg:tt)*) => { $crate::console::write_out(&format!($($arg)*)) };
}

/// `println!` that never panics.
macro_rules! outln {
    () => { $crate::console::write_out("\n") };
    ($($arg:tt)*) => { $crate::console::write_out(&format!("{}\n", format_args!($($arg)*))) };
}

/// `eprintln!` that never panics.
macro_rules! errln {
    ($($arg:tt)*) => { $crate::console::write_err(&format!("{}\n", format_args!($($arg)*))) };
}

pub(crate) use {errln, out, outln};
