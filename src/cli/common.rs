//! Helpers shared by subcommands: error rendering, exit codes, JSON output.

use qfault::error::EXIT_ERROR;

/// The exit code for an error: qfault's own mapping when the chain holds a
/// [`qfault::Error`], otherwise 1.
pub fn exit_code(e: &anyhow::Error) -> i32 {
    e.chain()
        .find_map(|c| c.downcast_ref::<qfault::Error>())
        .map_or(EXIT_ERROR, qfault::Error::exit_code)
}

/// The error and its causes on one line, separated by ": ".
pub fn one_line(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for c in e.chain() {
        let s = c.to_string();
        // thiserror messages often already embed their source; avoid repeats.
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ").replace('\n', " ")
}

/// Prints a value as pretty JSON on stdout.
pub fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
