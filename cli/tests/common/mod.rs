//! What the command tests read from a finished run of the binary.

use std::process::Output;

/// The run's standard output.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// stderr without the line saying how long the component took to load.
pub fn errors(output: &Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stderr)
        .lines()
        .filter(|line| !line.starts_with("component loaded in"))
        .map(str::to_string)
        .collect()
}
