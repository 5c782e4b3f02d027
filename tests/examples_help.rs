//! Every example answers `--help` with its own documentation and exits 0
//! (issue 15: `lazy_pirate --help` used to say "unknown option").
//!
//! `cargo test` builds the examples next to the test binaries, in
//! `target/<profile>/examples/`.

mod util;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use util::TIMEOUT;

fn examples_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/<this test> -> target/<profile>/examples
    exe.parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join("examples"))
        .expect("target directory")
}

#[test]
fn every_example_answers_help() {
    let dir = examples_dir();
    let names: Vec<String> = std::fs::read_dir(env!("CARGO_MANIFEST_DIR").to_owned() + "/examples")
        .expect("examples/")
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.strip_suffix(".rs").map(str::to_owned)
        })
        .collect();
    assert!(names.len() >= 13, "found only {names:?}");
    for name in names {
        let bin = dir.join(&name);
        let child = Command::new(&bin)
            .arg("--help")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
        let pid = child.id();
        let (done, exited) = crossbeam_channel::bounded(1);
        std::thread::spawn(move || {
            let _ = done.send(child.wait_with_output());
        });
        let Ok(output) = exited.recv_timeout(TIMEOUT) else {
            // SAFETY: kill(2) on the child's pid; it is ours and unreaped.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            panic!("{name} --help did not exit");
        };
        let output = output.expect("output");
        let (status, out) = (output.status, output.stdout);
        let text = String::from_utf8_lossy(&out);
        assert!(status.success(), "{name} --help: {status}");
        let source =
            std::fs::read_to_string(format!("{}/examples/{name}.rs", env!("CARGO_MANIFEST_DIR")))
                .expect("source");
        let first = source
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("//! "))
            .unwrap_or_else(|| panic!("{name}.rs has no doc comment"));
        assert!(
            text.starts_with(first),
            "{name} --help printed {text:?}, not its doc comment"
        );
    }
}
