//! The CURVE rows' libzmq: the `zmq` crate's vendored 4.3.4 is built
//! without libsodium, so it has no CURVE; pyzmq's wheel ships a libzmq
//! built with it. This module finds that library, loads it with `dlopen`
//! and plays the CURVE rows' roles through its C API, both ends, as the
//! `libzmq` column plays the others.
//!
//! Where the library is: `$FERROZMQ_BENCH_LIBZMQ` if set (a path to a
//! `libzmq.so` with CURVE), else the libzmq that `python3 -c "import zmq"`
//! maps. The parent looks once and hands the path to its children in that
//! variable; without the library the rows say n/a and the rest still runs.

use crate::child::{
    clock_batch, max_messages, mean_round_trips, now_ns, payload, report, status_kb, Curve,
};
use crate::role::{
    Role, CURVE_CLIENT_PUBLIC, CURVE_CLIENT_SECRET, CURVE_SERVER_PUBLIC, CURVE_SERVER_SECRET,
    SETTLE,
};
use libc::{c_char, c_int, c_void, size_t};
use std::ffi::{CStr, CString};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The variable that names the library, overriding the search (and how
/// the parent passes what it found to its children).
pub const LIB_ENV: &str = "FERROZMQ_BENCH_LIBZMQ";

// From zmq.h; stable across libzmq 4.x.
const ZMQ_REQ: c_int = 3;
const ZMQ_REP: c_int = 4;
const ZMQ_DEALER: c_int = 5;
const ZMQ_ROUTER: c_int = 6;
const ZMQ_PULL: c_int = 7;
const ZMQ_PUSH: c_int = 8;
const ZMQ_LINGER: c_int = 17;
const ZMQ_RCVTIMEO: c_int = 27;
const ZMQ_SNDTIMEO: c_int = 28;
const ZMQ_LAST_ENDPOINT: c_int = 32;
const ZMQ_CURVE_SERVER: c_int = 47;
const ZMQ_CURVE_PUBLICKEY: c_int = 48;
const ZMQ_CURVE_SECRETKEY: c_int = 49;
const ZMQ_CURVE_SERVERKEY: c_int = 50;

/// `zmq_msg_t`: 64 opaque bytes, pointer-aligned (zmq.h asks for it).
#[repr(C, align(8))]
struct RawMsg([u8; 64]);

type Ptr = *mut c_void;

/// The C functions the roles use, looked up once. The library is never
/// unloaded, so the pointers stay valid for the process's life.
pub struct Lib {
    ctx_new: unsafe extern "C" fn() -> Ptr,
    ctx_term: unsafe extern "C" fn(Ptr) -> c_int,
    socket: unsafe extern "C" fn(Ptr, c_int) -> Ptr,
    close: unsafe extern "C" fn(Ptr) -> c_int,
    setsockopt: unsafe extern "C" fn(Ptr, c_int, *const c_void, size_t) -> c_int,
    getsockopt: unsafe extern "C" fn(Ptr, c_int, *mut c_void, *mut size_t) -> c_int,
    bind: unsafe extern "C" fn(Ptr, *const c_char) -> c_int,
    connect: unsafe extern "C" fn(Ptr, *const c_char) -> c_int,
    send: unsafe extern "C" fn(Ptr, *const c_void, size_t, c_int) -> c_int,
    msg_init: unsafe extern "C" fn(*mut RawMsg) -> c_int,
    msg_recv: unsafe extern "C" fn(*mut RawMsg, Ptr, c_int) -> c_int,
    msg_send: unsafe extern "C" fn(*mut RawMsg, Ptr, c_int) -> c_int,
    msg_size: unsafe extern "C" fn(*const RawMsg) -> size_t,
    msg_data: unsafe extern "C" fn(*mut RawMsg) -> *mut c_void,
    msg_more: unsafe extern "C" fn(*const RawMsg) -> c_int,
    msg_close: unsafe extern "C" fn(*mut RawMsg) -> c_int,
    errno: unsafe extern "C" fn() -> c_int,
    strerror: unsafe extern "C" fn(c_int) -> *const c_char,
    has: unsafe extern "C" fn(*const c_char) -> c_int,
    version: unsafe extern "C" fn(*mut c_int, *mut c_int, *mut c_int),
    /// Where it was loaded from, and its version, for the table's notes.
    pub path: PathBuf,
    pub version_string: String,
}

/// The library, loaded (once), or why the CURVE rows' libzmq column is n/a.
pub fn lib() -> Result<&'static Lib, &'static str> {
    static LIB: OnceLock<Result<Lib, &'static str>> = OnceLock::new();
    LIB.get_or_init(|| load(locate()?)).as_ref().map_err(|e| *e)
}

/// `$FERROZMQ_BENCH_LIBZMQ`, else the libzmq pyzmq loads: python3 is
/// asked which file `import zmq` maps, which holds for pyzmq's bundled
/// library and for one built against the system's.
fn locate() -> Result<PathBuf, &'static str> {
    if let Some(p) = std::env::var_os(LIB_ENV).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    const ASK: &str = "import sys, zmq\n\
        for l in open('/proc/self/maps'):\n    \
            p = l.split()[-1]\n    \
            if p.rsplit('/', 1)[-1].startswith('libzmq'):\n        \
                sys.stdout.write(p); break\n";
    let out = std::process::Command::new("python3")
        .args(["-c", ASK])
        .stderr(std::process::Stdio::null())
        .output()
        .map_err(|_| "pyzmq not installed: no python3 (pip install pyzmq)")?;
    let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() || path.is_empty() {
        return Err("pyzmq not installed (pip install pyzmq)");
    }
    Ok(PathBuf::from(path))
}

// Each transmute's target is the `Lib` field it is stored in, whose type
// spells out the C signature once; repeating it at every lookup would add
// a second copy to keep in step.
#[allow(clippy::missing_transmute_annotations)]
fn load(path: PathBuf) -> Result<Lib, &'static str> {
    const NO_LOAD: &str =
        "the libzmq found, or named by FERROZMQ_BENCH_LIBZMQ, could not be loaded";
    let c_path = CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| NO_LOAD)?;
    // SAFETY: a NUL-terminated path. RTLD_LOCAL keeps its symbols out of
    // the global scope, and we look them up in it by handle, so the
    // vendored 4.3.4 linked into this binary (whose zmq_* symbols the
    // executable does not export) and this library never meet.
    let handle = unsafe { libc::dlopen(c_path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    if handle.is_null() {
        return Err(NO_LOAD);
    }
    macro_rules! sym {
        ($name:literal) => {{
            // SAFETY: a live handle and a NUL-terminated name.
            let p = unsafe { libc::dlsym(handle, concat!($name, "\0").as_ptr().cast()) };
            if p.is_null() {
                return Err("the libzmq found lacks a zmq_* function (too old?)");
            }
            // SAFETY: the symbol is the C function of that name in zmq.h,
            // whose signature the field this is stored in spells out.
            unsafe { std::mem::transmute::<*mut c_void, _>(p) }
        }};
    }
    let mut lib = Lib {
        ctx_new: sym!("zmq_ctx_new"),
        ctx_term: sym!("zmq_ctx_term"),
        socket: sym!("zmq_socket"),
        close: sym!("zmq_close"),
        setsockopt: sym!("zmq_setsockopt"),
        getsockopt: sym!("zmq_getsockopt"),
        bind: sym!("zmq_bind"),
        connect: sym!("zmq_connect"),
        send: sym!("zmq_send"),
        msg_init: sym!("zmq_msg_init"),
        msg_recv: sym!("zmq_msg_recv"),
        msg_send: sym!("zmq_msg_send"),
        msg_size: sym!("zmq_msg_size"),
        msg_data: sym!("zmq_msg_data"),
        msg_more: sym!("zmq_msg_more"),
        msg_close: sym!("zmq_msg_close"),
        errno: sym!("zmq_errno"),
        strerror: sym!("zmq_strerror"),
        has: sym!("zmq_has"),
        version: sym!("zmq_version"),
        path,
        version_string: String::new(),
    };
    // SAFETY: a NUL-terminated capability name.
    if unsafe { (lib.has)(c"curve".as_ptr()) } != 1 {
        return Err("the libzmq found has no CURVE (built without libsodium)");
    }
    let (mut major, mut minor, mut patch) = (0, 0, 0);
    // SAFETY: three valid int pointers.
    unsafe { (lib.version)(&mut major, &mut minor, &mut patch) };
    lib.version_string = format!("{major}.{minor}.{patch}");
    Ok(lib)
}

impl Lib {
    /// The last error, as text.
    fn error(&self, what: &str) -> String {
        // SAFETY: no arguments; reads the calling thread's errno.
        let code = unsafe { (self.errno)() };
        // SAFETY: zmq_strerror returns a static NUL-terminated string for
        // any code.
        let text = unsafe { CStr::from_ptr((self.strerror)(code)) };
        format!("libzmq {what}: {}", text.to_string_lossy())
    }
}

/// A context, terminated on drop (after its sockets: declare it first).
struct Ctx {
    lib: &'static Lib,
    raw: Ptr,
}

impl Ctx {
    fn new(lib: &'static Lib) -> Result<Ctx, String> {
        // SAFETY: no arguments.
        let raw = unsafe { (lib.ctx_new)() };
        if raw.is_null() {
            return Err(lib.error("zmq_ctx_new"));
        }
        Ok(Ctx { lib, raw })
    }

    /// A socket of type `ty`, with this child's CURVE keys if the row runs
    /// inside CURVE ([`crate::child::curve`]).
    fn socket(&self, ty: c_int) -> Result<Sock, String> {
        // SAFETY: a live context.
        let raw = unsafe { (self.lib.socket)(self.raw, ty) };
        if raw.is_null() {
            return Err(self.lib.error("zmq_socket"));
        }
        let s = Sock { lib: self.lib, raw };
        match crate::child::curve() {
            None => {}
            Some(Curve::Server) => {
                s.set_int(ZMQ_CURVE_SERVER, 1)?;
                s.set_key(ZMQ_CURVE_SECRETKEY, CURVE_SERVER_SECRET)?;
                s.set_key(ZMQ_CURVE_PUBLICKEY, CURVE_SERVER_PUBLIC)?;
            }
            Some(Curve::Client) => {
                s.set_key(ZMQ_CURVE_SECRETKEY, CURVE_CLIENT_SECRET)?;
                s.set_key(ZMQ_CURVE_PUBLICKEY, CURVE_CLIENT_PUBLIC)?;
                s.set_key(ZMQ_CURVE_SERVERKEY, CURVE_SERVER_PUBLIC)?;
            }
        }
        Ok(s)
    }
}

impl Drop for Ctx {
    fn drop(&mut self) {
        // SAFETY: a live context, terminated once; its sockets were
        // closed before (they are dropped first).
        unsafe { (self.lib.ctx_term)(self.raw) };
    }
}

/// A socket, closed on drop.
struct Sock {
    lib: &'static Lib,
    raw: Ptr,
}

impl Sock {
    fn set_int(&self, opt: c_int, v: c_int) -> Result<(), String> {
        let size = std::mem::size_of::<c_int>();
        // SAFETY: a live socket, and a pointer to an int of the size given.
        let rc = unsafe { (self.lib.setsockopt)(self.raw, opt, (&v as *const c_int).cast(), size) };
        match rc {
            0 => Ok(()),
            _ => Err(self.lib.error(&format!("zmq_setsockopt({opt})"))),
        }
    }

    /// A CURVE key in Z85: 40 characters and the NUL zmq.h asks for.
    fn set_key(&self, opt: c_int, z85: &str) -> Result<(), String> {
        let key = CString::new(z85).map_err(|_| "a key with a NUL".to_owned())?;
        let bytes = key.as_bytes_with_nul();
        // SAFETY: a live socket, and a buffer of the length given.
        let rc =
            unsafe { (self.lib.setsockopt)(self.raw, opt, bytes.as_ptr().cast(), bytes.len()) };
        match rc {
            0 => Ok(()),
            _ => Err(self.lib.error(&format!("zmq_setsockopt({opt})"))),
        }
    }

    /// Binds, and returns the endpoint with the port the OS chose.
    fn bind(&self, ep: &str) -> Result<String, String> {
        let c_ep = CString::new(ep).map_err(|_| format!("endpoint {ep:?} has a NUL"))?;
        // SAFETY: a live socket and a NUL-terminated endpoint.
        if unsafe { (self.lib.bind)(self.raw, c_ep.as_ptr()) } != 0 {
            return Err(self.lib.error("zmq_bind"));
        }
        let mut buf = [0u8; 256];
        let mut len: size_t = buf.len();
        // SAFETY: a live socket, a buffer and its length, which libzmq
        // updates to what it wrote.
        let rc = unsafe {
            (self.lib.getsockopt)(
                self.raw,
                ZMQ_LAST_ENDPOINT,
                buf.as_mut_ptr().cast(),
                &mut len,
            )
        };
        if rc != 0 {
            return Err(self.lib.error("zmq_getsockopt(LAST_ENDPOINT)"));
        }
        let text = buf.get(..len).unwrap_or(&buf);
        let text = text.split(|&b| b == 0).next().unwrap_or_default();
        Ok(String::from_utf8_lossy(text).into_owned())
    }

    fn connect(&self, ep: &str) -> Result<(), String> {
        let c_ep = CString::new(ep).map_err(|_| format!("endpoint {ep:?} has a NUL"))?;
        // SAFETY: a live socket and a NUL-terminated endpoint.
        match unsafe { (self.lib.connect)(self.raw, c_ep.as_ptr()) } {
            0 => Ok(()),
            _ => Err(self.lib.error("zmq_connect")),
        }
    }

    /// Sends one single-part message (copied by libzmq, as the `zmq`
    /// crate's `send(&[u8])` does in the other libzmq rows).
    fn send(&self, body: &[u8]) -> Result<(), String> {
        // SAFETY: a live socket and a buffer of the length given, which
        // libzmq copies before returning.
        let rc = unsafe { (self.lib.send)(self.raw, body.as_ptr().cast(), body.len(), 0) };
        match rc {
            -1 => Err(self.lib.error("zmq_send")),
            _ => Ok(()),
        }
    }

    /// Receives one frame into `msg` (whatever it held is released).
    fn recv(&self, msg: &mut Msg) -> Result<(), String> {
        // SAFETY: a live socket and an initialised message.
        match unsafe { (self.lib.msg_recv)(&mut *msg.raw, self.raw, 0) } {
            -1 => Err(self.lib.error("zmq_msg_recv")),
            _ => Ok(()),
        }
    }

    /// Sends `msg` on without copying; it is left empty, ready for the
    /// next receive.
    fn send_msg(&self, msg: &mut Msg) -> Result<(), String> {
        // SAFETY: a live socket and an initialised message, which
        // zmq_msg_send empties on success.
        match unsafe { (self.lib.msg_send)(&mut *msg.raw, self.raw, 0) } {
            -1 => Err(self.lib.error("zmq_msg_send")),
            _ => Ok(()),
        }
    }
}

impl Drop for Sock {
    fn drop(&mut self) {
        // SAFETY: a live socket, closed once.
        unsafe { (self.lib.close)(self.raw) };
    }
}

/// A `zmq_msg_t`, boxed so that it never moves once initialised.
struct Msg {
    lib: &'static Lib,
    raw: Box<RawMsg>,
}

impl Msg {
    fn new(lib: &'static Lib) -> Msg {
        let mut raw = Box::new(RawMsg([0; 64]));
        // SAFETY: pointer-aligned storage for a zmq_msg_t; zmq_msg_init
        // cannot fail.
        unsafe { (lib.msg_init)(&mut *raw) };
        Msg { lib, raw }
    }

    fn len(&self) -> usize {
        // SAFETY: an initialised message.
        unsafe { (self.lib.msg_size)(&*self.raw) }
    }

    fn more(&self) -> bool {
        // SAFETY: an initialised message.
        unsafe { (self.lib.msg_more)(&*self.raw) != 0 }
    }

    fn bytes(&mut self) -> Vec<u8> {
        let len = self.len();
        // SAFETY: an initialised message; its data is `len` bytes long and
        // lives until the message is next changed, after this copy.
        unsafe {
            let data = (self.lib.msg_data)(&mut *self.raw);
            std::slice::from_raw_parts(data.cast::<u8>(), len).to_vec()
        }
    }
}

impl Drop for Msg {
    fn drop(&mut self) {
        // SAFETY: an initialised message, closed once.
        unsafe { (self.lib.msg_close)(&mut *self.raw) };
    }
}

/// Plays `role` for the CURVE rows (and the NULL half of the handshake
/// row); returns once its work is done and reported.
pub fn run(role: &Role) -> Result<(), String> {
    let lib = lib()?;
    let ctx = Ctx::new(lib)?;
    match role {
        Role::RepServer {
            bind,
            size,
            heartbeat: None,
        } => {
            let s = ctx.socket(ZMQ_REP)?;
            report("endpoint", s.bind(bind)?);
            let mut msg = Msg::new(lib);
            loop {
                s.recv(&mut msg)?;
                if msg.len() != *size {
                    return Err(format!("request of {} bytes", msg.len()));
                }
                s.send_msg(&mut msg)?;
            }
        }
        Role::ReqClient { ep, size, secs } => {
            let s = ctx.socket(ZMQ_REQ)?;
            s.set_int(ZMQ_RCVTIMEO, 30_000)?;
            s.connect(ep)?;
            let body = payload(*size);
            let mut reply = Msg::new(lib);
            mean_round_trips(*secs, || {
                s.send(&body)?;
                s.recv(&mut reply)?;
                match reply.len() {
                    l if l == *size => Ok(()),
                    l => Err(format!("reply of {l} bytes")),
                }
            })?;
        }
        Role::PullServer { bind, size } => {
            let s = ctx.socket(ZMQ_PULL)?;
            report("endpoint", s.bind(bind)?);
            let mut msg = Msg::new(lib);
            let mut n = 0u64;
            loop {
                s.recv(&mut msg)?;
                match msg.len() {
                    0 => break,
                    l if l == *size => n += 1,
                    l => return Err(format!("message {n} has {l} bytes")),
                }
            }
            report("last_ns", now_ns());
            report("count", n);
        }
        Role::PushClient { ep, size, secs } => {
            let s = ctx.socket(ZMQ_PUSH)?;
            s.set_int(ZMQ_SNDTIMEO, 30_000)?;
            s.connect(ep)?;
            std::thread::sleep(SETTLE);
            let body = payload(*size);
            let (batch, limit) = (clock_batch(*size), Duration::from_secs_f64(*secs));
            let max = max_messages(*size, *secs);
            let start_ns = now_ns();
            let t = Instant::now();
            let mut n = 0u64;
            while n < max && t.elapsed() < limit {
                for _ in 0..batch {
                    s.send(&body)?;
                }
                n += batch;
            }
            s.send(&[])?;
            report("start_ns", start_ns);
            report("count", n);
            crate::child::park_forever();
        }
        Role::RouterCount { bind, n } => {
            let s = ctx.socket(ZMQ_ROUTER)?;
            s.set_int(ZMQ_RCVTIMEO, 90_000)?;
            report("endpoint", s.bind(bind)?);
            std::thread::sleep(Duration::from_millis(300));
            report("base_rss_kb", status_kb("VmRSS"));
            let mut ids = std::collections::HashSet::new();
            let mut msg = Msg::new(lib);
            while ids.len() < *n {
                // The routing id, then the rest of the message.
                s.recv(&mut msg)?;
                ids.insert(msg.bytes());
                while msg.more() {
                    s.recv(&mut msg)?;
                }
            }
            crate::child::report_all_in_and_park();
        }
        Role::DealerMany { ep, n } => {
            let sockets = (0..*n)
                .map(|_| {
                    let s = ctx.socket(ZMQ_DEALER)?;
                    s.set_int(ZMQ_LINGER, 0)?;
                    Ok(s)
                })
                .collect::<Result<Vec<_>, String>>()?;
            report("start_ns", now_ns());
            for s in &sockets {
                s.connect(ep)?;
            }
            for s in &sockets {
                s.send(b"hi")?;
            }
            report("sent", n);
            crate::child::park_forever();
        }
        r => return Err(format!("the CURVE libzmq column does not play {r:?}")),
    }
    Ok(())
}
