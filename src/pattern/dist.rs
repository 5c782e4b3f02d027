//! Fan-out: one message to many pipes, for PUB and XPUB (the idea of
//! libzmq's `dist_t`).
//!
//! A publisher must never block or fail because one subscriber is slow: a
//! pipe at its send HWM is skipped, and the drop is counted
//! ([`Pipes::drop_at_hwm`]: socket-wide and per pipe, so that a user can
//! find out *which* subscriber is slow).
//!
//! Every pipe gets a clone of the message. Clones share their frames'
//! [`Bytes`](bytes::Bytes), so a body is never copied per subscriber.

use super::pipe::Offer;
use super::{PipeId, Pipes};
use crate::id_map::IdSet;
use crate::message::Message;

/// What one [`Dist::send_to_matching`] did with the message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DistOutcome {
    /// Pipes that queued a copy.
    pub delivered: usize,
    /// Pipes skipped at their send HWM.
    pub dropped_hwm: usize,
    /// Pipes skipped because their peer is gone for good (an orphaned or
    /// removed pipe), counted in `Stats::dropped_peer_gone`.
    pub dropped_peer_gone: usize,
}

/// The pipes a publisher sends to.
#[derive(Debug, Default)]
pub struct Dist {
    attached: IdSet<PipeId>,
}

impl Dist {
    /// No pipes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a pipe.
    pub fn attach(&mut self, pipe: PipeId) {
        self.attached.insert(pipe);
    }

    /// Removes a pipe.
    pub fn detach(&mut self, pipe: PipeId) {
        self.attached.remove(&pipe);
    }

    /// True when `pipe` is attached.
    pub fn is_attached(&self, pipe: PipeId) -> bool {
        self.attached.contains(&pipe)
    }

    /// The attached pipes, in no particular order.
    pub fn pipes(&self) -> impl Iterator<Item = PipeId> + '_ {
        self.attached.iter().copied()
    }

    /// Number of attached pipes.
    pub fn len(&self) -> usize {
        self.attached.len()
    }

    /// True when no pipe is attached.
    pub fn is_empty(&self) -> bool {
        self.attached.is_empty()
    }

    /// Queues a clone of `msg` on each attached pipe of `matching` (the
    /// pipes whose subscriptions match, each listed once). A pipe at its
    /// send HWM, or whose peer is gone for good, is skipped and the drop
    /// counted; the others are unaffected. Pipes not attached (detached
    /// since they matched) are ignored.
    pub fn send_to_matching(
        &mut self,
        msg: Message,
        matching: impl IntoIterator<Item = PipeId>,
        pipes: &mut Pipes,
    ) -> DistOutcome {
        let mut outcome = DistOutcome::default();
        let mut attached = matching
            .into_iter()
            .filter(|id| self.attached.contains(id))
            .peekable();
        let mut msg = Some(msg);
        while let Some(id) = attached.next() {
            // The last pipe takes the message itself: a clone less, and
            // with one subscriber, none.
            let copy = if attached.peek().is_some() {
                msg.clone()
            } else {
                msg.take()
            };
            let Some(copy) = copy else { break };
            match pipes.offer(id, copy) {
                Offer::Queued => outcome.delivered += 1,
                Offer::Full(_) => {
                    outcome.dropped_hwm += 1;
                    pipes.drop_at_hwm(id);
                }
                Offer::Gone(_) => {
                    outcome.dropped_peer_gone += 1;
                    pipes.stats.dropped_peer_gone += 1;
                }
            }
        }
        outcome
    }

    /// True when every attached pipe of `matching` can take a message now:
    /// with `xpub_nodrop`, a send goes out only then, and otherwise waits
    /// (or is `WouldBlock`). Pipes whose peer is gone for good do not hold
    /// a send back: they never will have room.
    pub fn can_send_all(&self, matching: impl IntoIterator<Item = PipeId>, pipes: &Pipes) -> bool {
        matching.into_iter().all(|id| {
            !self.is_attached(id)
                || pipes.get(id).is_none_or(|p| p.is_orphan())
                || pipes.can_write(id)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pattern::pipe::Pipe;
    use bytes::Bytes;

    fn setup(hwms: &[usize]) -> (Dist, Pipes) {
        let mut dist = Dist::new();
        let mut pipes = Pipes::new();
        for (i, &hwm) in hwms.iter().enumerate() {
            let id = PipeId(i as u64 + 1);
            pipes.insert(id, hwm, hwm);
            dist.attach(id);
        }
        (dist, pipes)
    }

    #[test]
    fn every_matching_pipe_gets_the_same_bodies() {
        let (mut dist, mut pipes) = setup(&[0, 0, 0]);
        let body = Bytes::from(vec![7u8; 64 * 1024]);
        let msg = Message::from_frames([Bytes::from_static(b"topic"), body.clone()]);
        let outcome = dist.send_to_matching(msg, [PipeId(1), PipeId(3)], &mut pipes);
        assert_eq!(
            outcome,
            DistOutcome {
                delivered: 2,
                ..Default::default()
            }
        );
        for id in [PipeId(1), PipeId(3)] {
            let got = pipes.pop_outbound(id).expect("queued");
            let frames: Vec<&Bytes> = got.iter().collect();
            assert_eq!(frames.len(), 2);
            assert_eq!(frames[1].as_ptr(), body.as_ptr(), "the body was copied");
        }
        assert_eq!(pipes.pop_outbound(PipeId(2)), None, "not matching");

        // The common one-frame message too.
        let msg = Message::from(body.clone());
        dist.send_to_matching(msg, [PipeId(1), PipeId(2), PipeId(3)], &mut pipes);
        for id in [PipeId(1), PipeId(2), PipeId(3)] {
            let got = pipes.pop_outbound(id).expect("queued");
            assert_eq!(got.first().map(|f| f.as_ptr()), Some(body.as_ptr()));
        }
    }

    #[test]
    fn a_full_pipe_is_skipped_and_counted_for_it_alone() {
        let (mut dist, mut pipes) = setup(&[1, 2]);
        let all = [PipeId(1), PipeId(2)];
        assert_eq!(
            dist.send_to_matching("a".into(), all, &mut pipes).delivered,
            2
        );
        let outcome = dist.send_to_matching("b".into(), all, &mut pipes);
        assert_eq!((outcome.delivered, outcome.dropped_hwm), (1, 1));
        let dropped = |pipes: &Pipes, id| pipes.get(id).map(Pipe::dropped_hwm);
        assert_eq!(dropped(&pipes, PipeId(1)), Some(1));
        assert_eq!(dropped(&pipes, PipeId(2)), Some(0));
        assert_eq!(pipes.stats.dropped_hwm, 1);
        assert_eq!(pipes.take_drop_notices(), [(PipeId(1), 1)]);
        assert!(!dist.can_send_all(all, &pipes));
        assert!(
            dist.can_send_all(std::iter::empty(), &pipes),
            "nobody matches: nothing to wait for"
        );
        pipes.pop_outbound(PipeId(1));
        assert!(!dist.can_send_all(all, &pipes), "pipe 2 is full now");
        pipes.pop_outbound(PipeId(2));
        assert!(dist.can_send_all(all, &pipes));
        dist.detach(PipeId(1));
        assert!(!dist.is_attached(PipeId(1)));
    }

    #[test]
    fn gone_and_unattached_pipes() {
        let (mut dist, mut pipes) = setup(&[1, 0]);
        pipes.orphan(PipeId(2));
        pipes.insert(PipeId(9), 0, 0);
        let outcome = dist.send_to_matching(
            "m".into(),
            [PipeId(1), PipeId(2), PipeId(9), PipeId(42)],
            &mut pipes,
        );
        assert_eq!(
            outcome,
            DistOutcome {
                delivered: 1,
                dropped_hwm: 0,
                dropped_peer_gone: 1
            }
        );
        assert_eq!(pipes.stats.dropped_peer_gone, 1);
        assert_eq!(
            pipes.get(PipeId(9)).map(|p| p.outbound_len()),
            Some(0),
            "not attached"
        );
        // An orphan never has room again, so it cannot hold nodrop back.
        pipes.pop_outbound(PipeId(1));
        assert!(dist.can_send_all([PipeId(1), PipeId(2)], &pipes));
        dist.attach(PipeId(1));
        assert_eq!(dist.len(), 2, "attaching twice is a no-op");
        let mut ids: Vec<_> = dist.pipes().collect();
        ids.sort();
        assert_eq!(ids, [PipeId(1), PipeId(2)]);
    }
}
