//! Host-name resolution off the I/O thread.
//!
//! `getaddrinfo` blocks, and the I/O thread must never block, so names are
//! resolved on one helper thread per context, started on the first name and
//! joined when the I/O thread exits. Literal addresses never come here.

use super::mailbox::{Command, Mailbox};
use crossbeam_channel::Sender;
use std::net::ToSocketAddrs;
use std::thread::JoinHandle;

struct Job {
    connecter: u64,
    host: String,
    port: u16,
}

#[derive(Default)]
pub(crate) struct Resolver {
    worker: Option<(Sender<Job>, JoinHandle<()>)>,
}

impl Resolver {
    /// Starts resolving; the answer comes back as [`Command::Resolved`].
    pub(crate) fn resolve(&mut self, mailbox: &Mailbox, connecter: u64, host: &str, port: u16) {
        if self.worker.is_none() {
            let (tx, rx) = crossbeam_channel::unbounded::<Job>();
            let reply_to = mailbox.clone();
            let spawned = std::thread::Builder::new()
                .name("ferrozmq-resolver".into())
                .spawn(move || {
                    for job in rx {
                        let result = (job.host.as_str(), job.port)
                            .to_socket_addrs()
                            .map(|it| it.collect::<Vec<_>>());
                        reply_to.send(Command::Resolved {
                            connecter: job.connecter,
                            result,
                        });
                    }
                });
            match spawned {
                Ok(handle) => self.worker = Some((tx, handle)),
                Err(e) => {
                    mailbox.send(Command::Resolved {
                        connecter,
                        result: Err(e),
                    });
                    return;
                }
            }
        }
        if let Some((tx, _)) = &self.worker {
            let job = Job {
                connecter,
                host: host.to_owned(),
                port,
            };
            if tx.send(job).is_err() {
                mailbox.send(Command::Resolved {
                    connecter,
                    result: Err(std::io::Error::other("resolver thread is gone")),
                });
            }
        }
    }

    /// Stops the worker and waits for it.
    pub(crate) fn shutdown(&mut self) {
        if let Some((tx, handle)) = self.worker.take() {
            drop(tx);
            let _ = handle.join();
        }
    }
}
