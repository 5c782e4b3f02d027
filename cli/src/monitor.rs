//! `fzmq monitor`: a socket of the chosen type connects (or binds) and
//! prints, one per line with a UTC timestamp, each monitor event
//! (`Socket::monitor`) as it happens and every endpoint's status
//! (`Socket::endpoints`) every `--interval-ms`.
//!
//! The socket is a real peer: a PULL or a REP takes its share of the
//! traffic. What it receives is counted (`received=` in status lines) and
//! discarded.

use crate::Outcome;
use clap::Args;
use ferrozmq::{Context, EndpointState, EndpointStatus, EventKind, MonitorEvent, SocketType};
use std::io::{self, Write};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Arguments of `fzmq monitor`.
#[derive(Args, Debug)]
pub struct MonitorArgs {
    /// Where: tcp://host:port.
    endpoint: String,
    /// The socket type to connect (or bind) with.
    #[arg(long = "type", value_name = "T", value_parser = crate::parse_type)]
    ty: SocketType,
    /// Bind to the endpoint instead of connecting to it.
    #[arg(long)]
    bind: bool,
    /// Print every endpoint's status this often.
    #[arg(long, value_name = "MS", default_value_t = 1000,
          value_parser = crate::millis())]
    interval_ms: u64,
    /// Stop after N events (exit 3 if --timeout-ms passes first).
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// Stop after MS milliseconds (exit 0, unless --count was not reached).
    #[arg(long, value_name = "MS", value_parser = crate::millis())]
    timeout_ms: Option<u64>,
}

/// Runs until killed, `--count` events, or `--timeout-ms`.
pub fn run(args: &MonitorArgs) -> Outcome {
    let ctx = Context::new();
    let socket = match ctx.socket(args.ty) {
        Ok(s) => s,
        Err(e) => return Outcome::Failed(format!("creating the socket: {e}")),
    };
    if let Err(e) = socket.set_linger(Some(Duration::ZERO)) {
        return Outcome::Failed(format!("setting linger: {e}"));
    }
    // Before connecting, so that the first events are seen.
    let events = socket.monitor();
    let done = if args.bind {
        socket.bind(&args.endpoint).map(drop)
    } else {
        socket.connect(&args.endpoint)
    };
    if let Err(e) = done {
        return match e {
            ferrozmq::Error::InvalidEndpoint(_) => Outcome::Usage(e.to_string()),
            e => Outcome::Failed(format!("{}: {e}", args.endpoint)),
        };
    }
    let mut out = io::stdout().lock();
    let interval = Duration::from_millis(args.interval_ms);
    let end = args
        .timeout_ms
        .and_then(|ms| Instant::now().checked_add(Duration::from_millis(ms)));
    let mut next_status = Instant::now();
    let (mut seen, mut received) = (0u64, 0u64);
    loop {
        let now = Instant::now();
        if now >= next_status {
            let statuses = match socket.endpoints() {
                Ok(s) => s,
                Err(e) => return Outcome::Failed(format!("endpoint status: {e}")),
            };
            while socket.try_recv().is_ok() {
                received += 1;
            }
            for s in &statuses {
                if let Err(o) = emit(&mut out, &status_line(s, received, now)) {
                    return o;
                }
            }
            next_status = now + interval;
        }
        if end.is_some_and(|end| now >= end) {
            return match args.count {
                Some(n) => Outcome::TimedOut(format!("{seen} of {n} events")),
                None => Outcome::Done,
            };
        }
        let wake = end.map_or(next_status, |end| end.min(next_status));
        match events.recv_timeout(wake.saturating_duration_since(now)) {
            Ok(event) => {
                if let Err(o) = emit(&mut out, &format!("event  {}", describe(&event))) {
                    return o;
                }
                seen += 1;
                if args.count.is_some_and(|n| seen >= n) {
                    return Outcome::Done;
                }
            }
            Err(e) if e.is_timeout() => {}
            Err(_) => return Outcome::Failed("the monitor channel closed".into()),
        }
    }
}

/// Writes one timestamped line; a closed stdout ends the run quietly.
fn emit(out: &mut impl Write, line: &str) -> Result<(), Outcome> {
    match writeln!(out, "{} {line}", timestamp()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Err(Outcome::Done),
        Err(e) => Err(Outcome::Failed(format!("writing stdout: {e}"))),
    }
}

/// An event as `ENDPOINT NAME details`, with libzmq's `ZMQ_EVENT_*` names
/// (those libzmq has not, in the same style).
fn describe(event: &MonitorEvent) -> String {
    let detail = match &event.kind {
        EventKind::Connected => "CONNECTED".to_owned(),
        EventKind::ConnectDelayed => "CONNECT_DELAYED".to_owned(),
        EventKind::ConnectRetried { after } => {
            format!("CONNECT_RETRIED next attempt in {} ms", after.as_millis())
        }
        EventKind::ConnectFailed { cause, error } => {
            let cause = format!("{cause:?}").to_lowercase();
            match error {
                Some(e) => format!("CONNECT_FAILED {cause}: {e}"),
                None => format!("CONNECT_FAILED {cause}"),
            }
        }
        EventKind::Listening => "LISTENING".to_owned(),
        EventKind::BindFailed { error } => format!("BIND_FAILED {error}"),
        EventKind::Accepted => "ACCEPTED".to_owned(),
        EventKind::AcceptFailed { error } => format!("ACCEPT_FAILED {error}"),
        EventKind::HandshakeSucceeded => "HANDSHAKE_SUCCEEDED".to_owned(),
        EventKind::HandshakeFailed { reason } => format!("HANDSHAKE_FAILED {reason}"),
        EventKind::Disconnected { reason, error } => match (reason, error) {
            (Some(r), _) => format!("DISCONNECTED {r}"),
            (None, Some(e)) => format!("DISCONNECTED {e}"),
            (None, None) => "DISCONNECTED".to_owned(),
        },
        EventKind::Closed => "CLOSED".to_owned(),
        EventKind::DroppedAtHwm { dropped } => format!("DROPPED_AT_HWM dropped={dropped}"),
        EventKind::MonitorStopped => "MONITOR_STOPPED".to_owned(),
        other => format!("{other:?}"),
    };
    format!("{} {detail}", event.endpoint)
}

fn status_line(s: &EndpointStatus, received: u64, now: Instant) -> String {
    let state = match s.state {
        EndpointState::Listening => "listening".to_owned(),
        EndpointState::Resolving => "resolving".to_owned(),
        EndpointState::Connecting => "connecting".to_owned(),
        EndpointState::Handshaking => "handshaking".to_owned(),
        EndpointState::Connected => "connected".to_owned(),
        EndpointState::Waiting { until } => format!(
            "waiting (next attempt in {} ms)",
            until.saturating_duration_since(now).as_millis()
        ),
        EndpointState::Stopped => "stopped".to_owned(),
        other => format!("{other:?}").to_lowercase(),
    };
    let mut line = format!(
        "status {} {state} attempts={} queued={} received={received} peers={}",
        s.endpoint,
        s.attempts,
        s.queued,
        s.peers.len()
    );
    if let Some((cause, text)) = &s.last_error {
        let cause = format!("{cause:?}").to_lowercase();
        line.push_str(&format!(" last_error={cause}: {text}"));
    }
    for p in &s.peers {
        line.push_str(&format!(
            " [{} {} queued={} dropped_hwm={}]",
            p.address,
            if p.ready { "ready" } else { "handshaking" },
            p.queued,
            p.dropped_hwm
        ));
    }
    line
}

/// Now, as `2026-11-30T00:41:02.123Z`.
fn timestamp() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs();
    let (y, m, day) = civil_from_days((secs / 86_400) as i64);
    let s = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        s / 3600,
        s % 3600 / 60,
        s % 60,
        d.subsec_millis()
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard
/// Hinnant's `civil_from_days`), so that timestamps need no date crate.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::civil_from_days;

    #[test]
    fn days_map_to_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(59), (1970, 3, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_787), (2026, 11, 30));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }
}
