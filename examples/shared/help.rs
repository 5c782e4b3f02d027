//! `--help` for every example: its text is the example's own `//!` doc
//! comment, so the help and the docs cannot drift apart.

/// When the command line has `-h` or `--help`, prints the leading `//!`
/// comment of `source` (the example's own file, by `include_str!`) and
/// returns true: the caller exits 0.
pub fn requested(source: &str) -> bool {
    if !std::env::args().skip(1).any(|a| a == "-h" || a == "--help") {
        return false;
    }
    for line in source.lines().take_while(|l| l.starts_with("//!")) {
        let text = line.trim_start_matches("//!");
        let text = text.strip_prefix(' ').unwrap_or(text);
        // Code fences are markup for rustdoc, not for a terminal.
        if !text.starts_with("```") {
            println!("{text}");
        }
    }
    true
}
