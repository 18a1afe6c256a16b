//! Command output on stdout. A closed stdout (`crossgate fx log | head`) ends the command
//! quietly with exit 0, as ripgrep does, instead of `println!`'s "failed printing to stdout"
//! panic; every command prints through [`outln!`](crate::outln) and [`out!`](crate::out).

use std::fmt;
use std::io::{ErrorKind, Write};

/// Writes to stdout; a reader that went away ends the process with exit 0.
pub fn write(args: fmt::Arguments<'_>, newline: bool) {
    let mut out = std::io::stdout().lock();
    let result = out.write_fmt(args).and_then(|()| {
        if newline {
            out.write_all(b"\n")
        } else {
            Ok(())
        }
    });
    finish(result);
}

/// Writes bytes as they are (a streamed export) to stdout, with the same rule.
pub fn write_bytes(bytes: &[u8]) {
    finish(std::io::stdout().lock().write_all(bytes));
}

fn finish(result: std::io::Result<()>) {
    match result {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => {
            eprintln!("error: writing to stdout: {e}");
            std::process::exit(1);
        }
    }
}

/// Flushes stdout (before a long wait, say) with the same rule for a closed reader.
pub fn flush() {
    match std::io::stdout().lock().flush() {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => {
            eprintln!("error: writing to stdout: {e}");
            std::process::exit(1);
        }
    }
}

/// `println!` for command output (see the module docs).
#[macro_export]
macro_rules! outln {
    () => {
        $crate::stdout::write(format_args!(""), true)
    };
    ($($arg:tt)*) => {
        $crate::stdout::write(format_args!($($arg)*), true)
    };
}

/// `print!` for command output (see the module docs).
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::stdout::write(format_args!($($arg)*), false)
    };
}
