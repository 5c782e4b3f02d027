//! [`Events`]: what a socket is ready for, as `zmq_poll` reports it.

/// A set of readiness conditions: [`Events::IN`], [`Events::OUT`], or both.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Events(u8);

impl Events {
    /// Nothing.
    pub const NONE: Events = Events(0);
    /// A `recv` would return without blocking (`ZMQ_POLLIN`): a message,
    /// or the failure of an outstanding request.
    pub const IN: Events = Events(1);
    /// A `send` would not block (`ZMQ_POLLOUT`).
    pub const OUT: Events = Events(2);

    /// True when every condition in `other` is in `self`.
    pub fn contains(self, other: Events) -> bool {
        self.0 & other.0 == other.0
    }

    /// True when no condition is set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// True when [`Events::IN`] is set.
    pub fn is_readable(self) -> bool {
        self.contains(Events::IN)
    }

    /// True when [`Events::OUT`] is set.
    pub fn is_writable(self) -> bool {
        self.contains(Events::OUT)
    }
}

impl std::ops::BitOr for Events {
    type Output = Events;
    fn bitor(self, rhs: Events) -> Events {
        Events(self.0 | rhs.0)
    }
}

impl std::ops::BitOrAssign for Events {
    fn bitor_assign(&mut self, rhs: Events) {
        self.0 |= rhs.0;
    }
}

impl std::ops::BitAnd for Events {
    type Output = Events;
    fn bitand(self, rhs: Events) -> Events {
        Events(self.0 & rhs.0)
    }
}
