//! send/recv/req/rep/pub/sub/push/pull, driven through the binary: two
//! `fzmq` processes talk over loopback on an ephemeral port, the one that
//! binds telling the other where (its `fzmq: bound` line).

mod util;

use util::{run, spawn};

const T: &str = "10000";

#[test]
fn send_and_recv_move_every_line_as_a_message_with_tab_separated_frames() {
    let mut input = String::from("a\tb\n\nc d\n");
    for i in 0..197 {
        input.push_str(&format!("m{i}\n"));
    }
    let mut recv = spawn(
        &[
            "recv",
            "tcp://127.0.0.1:*",
            "--bind",
            "--count",
            "200",
            "--timeout-ms",
            T,
        ],
        "",
    );
    let ep = recv.bound();
    let send = run(&["send", &ep, "--timeout-ms", T], &input);
    assert_eq!(send.code, Some(0), "{send:?}");
    let got = recv.wait();
    assert_eq!(got.code, Some(0), "{got:?}");
    // Piped: exactly the messages, and no progress bar on stderr.
    assert_eq!(got.stdout, input);
    assert_eq!(got.stderr, format!("fzmq: bound {ep}\n"));
    assert_eq!(send.stderr, "");
}

#[test]
fn push_and_pull_with_a_custom_separator() {
    let mut pull = spawn(
        &[
            "pull",
            "tcp://127.0.0.1:*",
            "--bind",
            "--count",
            "1",
            "--timeout-ms",
            T,
        ],
        "",
    );
    let ep = pull.bound();
    let push = run(
        &["push", &ep, "--separator", "|", "--timeout-ms", T],
        "x|y\n",
    );
    assert_eq!(push.code, Some(0), "{push:?}");
    let got = pull.wait();
    // Two frames: written back with the default separator.
    assert_eq!(got.stdout, "x\ty\n");
}

#[test]
fn req_and_rep_echo() {
    let mut rep = spawn(
        &[
            "rep",
            "tcp://127.0.0.1:*",
            "--bind",
            "--echo",
            "--count",
            "2",
            "--timeout-ms",
            T,
        ],
        "",
    );
    let ep = rep.bound();
    let req = run(&["req", &ep, "--timeout-ms", T], "hello\tworld\nsecond\n");
    assert_eq!(req.code, Some(0), "{req:?}");
    assert_eq!(req.stdout, "hello\tworld\nsecond\n");
    let rep = rep.wait();
    assert_eq!(rep.code, Some(0), "{rep:?}");
    assert_eq!(rep.stdout, "hello\tworld\nsecond\n");
}

#[test]
fn rep_answers_each_request_with_the_next_stdin_line() {
    let mut rep = spawn(
        &[
            "rep",
            "tcp://127.0.0.1:*",
            "--bind",
            "--count",
            "1",
            "--timeout-ms",
            T,
        ],
        "pong\n",
    );
    let ep = rep.bound();
    let req = run(&["req", &ep, "--timeout-ms", T], "ping\n");
    assert_eq!(req.stdout, "pong\n", "{req:?}");
    assert_eq!(rep.wait().stdout, "ping\n");
}

#[test]
fn sub_gets_what_it_subscribed_to_from_a_pub_that_waits_for_it() {
    let mut sub = spawn(
        &[
            "sub",
            "tcp://127.0.0.1:*",
            "--bind",
            "--subscribe",
            "a",
            "--subscribe",
            "c",
            "--count",
            "3",
            "--timeout-ms",
            T,
        ],
        "",
    );
    let ep = sub.bound();
    let publ = run(
        &["pub", &ep, "--subscribers", "2", "--timeout-ms", T],
        "b1\na1\nc1\nb2\na2\n",
    );
    assert_eq!(publ.code, Some(0), "{publ:?}");
    let got = sub.wait();
    assert_eq!(got.code, Some(0), "{got:?}");
    assert_eq!(got.stdout, "a1\nc1\na2\n");
}

#[test]
fn recv_as_xsub_subscribes_with_the_message_form() {
    let mut xsub = spawn(
        &[
            "recv",
            "tcp://127.0.0.1:*",
            "--bind",
            "--type",
            "xsub",
            "--subscribe",
            "a",
            "--count",
            "1",
            "--timeout-ms",
            T,
        ],
        "",
    );
    let ep = xsub.bound();
    let publ = run(
        &["pub", &ep, "--subscribers", "1", "--timeout-ms", T],
        "b1\na1\n",
    );
    assert_eq!(publ.code, Some(0), "{publ:?}");
    assert_eq!(xsub.wait().stdout, "a1\n");
}

#[test]
fn hex_and_json_carry_binary_frames() {
    let mut recv = spawn(
        &[
            "recv",
            "tcp://127.0.0.1:*",
            "--bind",
            "--hex",
            "--count",
            "1",
            "--timeout-ms",
            T,
        ],
        "",
    );
    let ep = recv.bound();
    let send = run(
        &["send", &ep, "--json", "--timeout-ms", T],
        "[{\"hex\": \"00ff\"}, \"é\"]\n",
    );
    assert_eq!(send.code, Some(0), "{send:?}");
    assert_eq!(recv.wait().stdout, "00ff\tc3a9\n");

    let mut recv = spawn(
        &[
            "recv",
            "tcp://127.0.0.1:*",
            "--bind",
            "--json",
            "--count",
            "1",
            "--timeout-ms",
            T,
        ],
        "",
    );
    let ep = recv.bound();
    let send = run(&["send", &ep, "--hex", "--timeout-ms", T], "00ff\t6869\n");
    assert_eq!(send.code, Some(0), "{send:?}");
    assert_eq!(recv.wait().stdout, "[{\"hex\":\"00ff\"},\"hi\"]\n");
}

#[test]
fn timeouts_exit_3() {
    let recv = run(
        &["recv", "tcp://127.0.0.1:*", "--bind", "--timeout-ms", "100"],
        "",
    );
    assert_eq!(recv.code, Some(3), "{recv:?}");
    assert!(
        recv.stderr.contains("timed out: waiting for message 1"),
        "{recv:?}"
    );

    // Nothing listens on a port we just closed: the message cannot leave.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let push = run(
        &[
            "push",
            &format!("tcp://127.0.0.1:{port}"),
            "--timeout-ms",
            "100",
        ],
        "lost\n",
    );
    assert_eq!(push.code, Some(3), "{push:?}");
    assert!(
        push.stderr.contains("not delivered within 100 ms"),
        "{push:?}"
    );
}

#[test]
fn bad_input_and_bad_arguments_have_their_own_codes() {
    let bad_hex = run(
        &["send", "tcp://127.0.0.1:9", "--hex", "--timeout-ms", "100"],
        "zz\n",
    );
    assert_eq!(bad_hex.code, Some(1), "{bad_hex:?}");
    assert!(
        bad_hex.stderr.contains("stdin line 1: not a hex digit"),
        "{bad_hex:?}"
    );

    let bad_endpoint = run(&["recv", "localhost:5"], "");
    assert_eq!(bad_endpoint.code, Some(2), "{bad_endpoint:?}");
    let wrong_type = run(&["send", "tcp://127.0.0.1:9", "--type", "pull"], "");
    assert_eq!(wrong_type.code, Some(2), "{wrong_type:?}");
    let unknown = run(&["recv", "tcp://127.0.0.1:9", "--type", "nope"], "");
    assert_eq!(unknown.code, Some(2), "{unknown:?}");
    let both = run(&["recv", "tcp://127.0.0.1:9", "--hex", "--json"], "");
    assert_eq!(both.code, Some(2), "{both:?}");
}

#[test]
fn help_lists_the_commands_and_exit_codes() {
    let help = run(&["--help"], "");
    assert_eq!(help.code, Some(0));
    for word in [
        "send", "recv", "req", "rep", "pub", "sub", "push", "pull", "probe", "monitor",
    ] {
        assert!(help.stdout.contains(word), "{word} in {}", help.stdout);
    }
    for code in ["  3  timed out", "  11  connection refused", "  25  "] {
        assert!(help.stdout.contains(code), "{code:?} in {}", help.stdout);
    }
}

#[test]
fn a_long_count_run_shows_progress_on_a_terminal() {
    // `script` (util-linux, on every Debian) gives the sender a terminal
    // for stdout and stderr; the test above covers the piped case.
    let mut pull = spawn(
        &[
            "pull",
            "tcp://127.0.0.1:*",
            "--bind",
            "--count",
            "300",
            "--timeout-ms",
            T,
        ],
        "",
    );
    let ep = pull.bound();
    let dir = std::env::temp_dir().join(format!("fzmq-progress-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let lines = dir.join("lines");
    let input: String = (0..300).map(|i| format!("{i}\n")).collect();
    std::fs::write(&lines, input).expect("write lines");
    let command = format!(
        "'{}' push '{ep}' --count 300 --timeout-ms {T} < '{}'",
        env!("CARGO_BIN_EXE_fzmq"),
        lines.display()
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("script(1) from util-linux runs");
    let _ = std::fs::remove_dir_all(&dir);
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        shown.contains("sent ") && shown.contains(" msg/s"),
        "{shown:?}"
    );
    assert_eq!(pull.wait().stdout.lines().count(), 300);
}
