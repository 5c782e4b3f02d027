//! What the four perf tools share: libzmq's command line
//! (`<endpoint> <message-size> <count>`) and its exit conventions.

use std::process::ExitCode;

/// Parses `<endpoint> <message-size> <count>` and runs `run` with them,
/// printing errors to stdout as libzmq's tools do. `source` is the tool's
/// own file, whose doc comment `--help` prints; `usage` is the line
/// printed for a bad command line; `min_count` is the smallest count the
/// tool can work with.
pub fn main_with(
    source: &str,
    usage: &str,
    min_count: u64,
    run: impl FnOnce(&str, usize, u64) -> Result<(), String>,
) -> ExitCode {
    if super::help::requested(source) {
        return ExitCode::SUCCESS;
    }
    let args: Vec<String> = std::env::args().collect();
    let parsed = match args.as_slice() {
        [_, endpoint, size, count] => size
            .parse::<usize>()
            .ok()
            .zip(count.parse::<u64>().ok())
            .map(|(size, count)| (endpoint.as_str(), size, count)),
        _ => None,
    };
    let Some((endpoint, size, count)) = parsed else {
        println!("usage: {usage}");
        return ExitCode::from(1);
    };
    if count < min_count {
        println!("the count must be at least {min_count}");
        return ExitCode::from(1);
    }
    match run(endpoint, size, count) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            println!("{e}");
            ExitCode::FAILURE
        }
    }
}
