//! Private namespaces, for tests whose subject plain loopback cannot
//! stage: a network namespace to hold iptables rules (or an IPv6 loopback
//! that the machine lacks), a mount namespace to hold an `/etc/hosts` of
//! the test's own.
//!
//! These need root (CAP_SYS_ADMIN, CAP_NET_ADMIN), `ip` (iproute2) and
//! `iptables`. Where any of that is missing the helpers panic and say what
//! is missing, because a test that could not run must not be counted as
//! passed. `.ci/run` installs the tools, and CI runs it as root.

use super::bounded;
use std::io;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Bound of one whole run inside a namespace. The waits inside are bounded
/// on their own; this catches a hang outside them (a stuck `iptables`).
const RUN_LIMIT: Duration = Duration::from_secs(120);

/// The name of the running test: libtest names each test's thread after
/// the test, and [`bounded`] passes the name on.
pub fn test_name() -> String {
    match std::thread::current().name() {
        Some(name) if name != "main" => name.to_owned(),
        _ => "<test name>".to_owned(),
    }
}

/// Fails the running test because the machine lacks something it needs,
/// saying what and how to get it.
#[track_caller]
pub fn missing(what: &str) -> ! {
    let test = test_name();
    panic!(
        "{test} cannot run here: {what}.\n\
         It needs root, `ip` (iproute2) and `iptables`, and fails rather than \
         pass without running. Run the tests as root with both installed \
         (`.ci/run` installs them), or deselect this one with \
         `cargo test -- --skip {test}`."
    )
}

/// Runs `program` with `args` and waits for it, failing the test with the
/// program's own error output unless it succeeds. `package` is the Debian
/// package that provides the program.
pub fn run(program: &str, args: &[&str], package: &str) {
    let command = format!("{program} {}", args.join(" "));
    match Command::new(program).args(args).output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => missing(&format!(
            "`{command}` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => missing(&format!(
            "`{program}` is not installed (Debian package {package})"
        )),
        Err(e) => missing(&format!("cannot start `{command}`: {e}")),
    }
}

/// Adds an iptables rule; only meaningful inside [`in_netns`], where the
/// rule dies with the namespace instead of outliving the test.
pub fn iptables(args: &[&str]) {
    run("iptables", args, "iptables");
}

/// Moves the calling thread into new namespaces of the `CLONE_*` kinds in
/// `flags`, or fails the test.
fn unshare(flags: libc::c_int, what: &str) {
    // SAFETY: unshare takes no pointers and changes only the namespaces
    // of the calling thread, which is one that this module spawned.
    if unsafe { libc::unshare(flags) } != 0 {
        let err = io::Error::last_os_error();
        missing(&format!(
            "cannot create a {what} namespace, which needs root: {err}"
        ))
    }
}

/// Runs `f` on a thread of its own inside a new network namespace whose
/// only interface, `lo`, is up with 127.0.0.1 and (where the kernel has
/// IPv6) ::1. A `Context` created inside `f` inherits the namespace for
/// its I/O thread. A panic inside `f` fails the test as usual.
pub fn in_netns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    bounded(RUN_LIMIT, "the run in a network namespace", move || {
        unshare(libc::CLONE_NEWNET, "network");
        run("ip", &["link", "set", "lo", "up"], "iproute2");
        f()
    })
}

/// Runs `f` on a thread of its own inside a new mount namespace where
/// `/etc/hosts` reads `hosts`, so that name resolution does not depend on
/// the machine's file. Nests inside [`in_netns`].
pub fn with_hosts<T: Send + 'static>(hosts: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let hosts = hosts.to_owned();
    bounded(RUN_LIMIT, "the run with a private /etc/hosts", move || {
        unshare(libc::CLONE_NEWNS, "mount");
        // On a shared `/` the bind mount below would reach the machine's
        // own mount namespace and change its /etc/hosts.
        run("mount", &["--make-rprivate", "/"], "mount");
        let dir = std::env::temp_dir().join(format!(
            "ferrozmq-hosts-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create the private hosts directory");
        let file = dir.join("hosts");
        std::fs::write(&file, hosts).expect("write the private hosts file");
        let source = file.to_str().expect("temp dir path is UTF-8");
        run("mount", &["--bind", source, "/etc/hosts"], "mount");
        // The mount holds the file open; the path is no longer needed, and
        // removing it now leaves nothing behind should `f` panic.
        std::fs::remove_dir_all(&dir).expect("remove the private hosts directory");
        f()
    })
}
