//! [`SocketType`] and the ZMTP socket-type compatibility rules (RFC 23/28).

use std::fmt;

/// The ZeroMQ socket types this library implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SocketType {
    /// Client side of request-reply: strict send, recv, send, recv.
    Req,
    /// Service side of request-reply: strict recv, send, recv, send.
    Rep,
    /// Asynchronous request-reply client: round-robin out, fair-queue in.
    Dealer,
    /// Asynchronous request-reply router: addresses peers by routing id.
    Router,
    /// Pipeline sender: round-robin out.
    Push,
    /// Pipeline receiver: fair-queue in.
    Pull,
    /// Publisher: sends each message to every subscriber whose
    /// subscriptions match it; never receives.
    Pub,
    /// Subscriber: receives what it subscribed to, from every publisher.
    Sub,
    /// A publisher that also receives its subscribers' subscriptions.
    XPub,
    /// A subscriber whose subscriptions are messages the application sends.
    XSub,
    /// An exclusive connection to one peer.
    Pair,
}

impl SocketType {
    /// The name carried in the ZMTP `Socket-Type` property.
    pub fn as_str(self) -> &'static str {
        match self {
            SocketType::Req => "REQ",
            SocketType::Rep => "REP",
            SocketType::Dealer => "DEALER",
            SocketType::Router => "ROUTER",
            SocketType::Push => "PUSH",
            SocketType::Pull => "PULL",
            SocketType::Pub => "PUB",
            SocketType::Sub => "SUB",
            SocketType::XPub => "XPUB",
            SocketType::XSub => "XSUB",
            SocketType::Pair => "PAIR",
        }
    }

    /// Parses a ZMTP `Socket-Type` property value. Names of socket types we
    /// do not implement return `None`.
    pub fn from_name(name: &[u8]) -> Option<SocketType> {
        Some(match name {
            b"REQ" => SocketType::Req,
            b"REP" => SocketType::Rep,
            b"DEALER" => SocketType::Dealer,
            b"ROUTER" => SocketType::Router,
            b"PUSH" => SocketType::Push,
            b"PULL" => SocketType::Pull,
            b"PUB" => SocketType::Pub,
            b"SUB" => SocketType::Sub,
            b"XPUB" => SocketType::XPub,
            b"XSUB" => SocketType::XSub,
            b"PAIR" => SocketType::Pair,
            _ => return None,
        })
    }

    /// True when a socket of this type may talk to a peer of type `peer`.
    pub fn is_compatible(self, peer: SocketType) -> bool {
        use SocketType::*;
        matches!(
            (self, peer),
            (Req, Rep | Router)
                | (Rep, Req | Dealer)
                | (Dealer, Rep | Dealer | Router)
                | (Router, Req | Dealer | Router)
                | (Push, Pull)
                | (Pull, Push)
                | (Pub | XPub, Sub | XSub)
                | (Sub | XSub, Pub | XPub)
                | (Pair, Pair)
        )
    }

    /// True for the subscriber types, whose subscriptions travel upstream
    /// as SUBSCRIBE/CANCEL commands (ZMTP 3.1) or messages (3.0).
    pub fn subscribes(self) -> bool {
        matches!(self, SocketType::Sub | SocketType::XSub)
    }

    /// True for the publisher types, which take those subscriptions in.
    pub fn publishes(self) -> bool {
        matches!(self, SocketType::Pub | SocketType::XPub)
    }

    /// True for the types that send the `Identity` property in READY, as
    /// libzmq does (so our bytes match its bytes).
    pub fn sends_identity(self) -> bool {
        matches!(
            self,
            SocketType::Req | SocketType::Dealer | SocketType::Router
        )
    }
}

impl fmt::Display for SocketType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::SocketType::*;
    use super::*;

    #[test]
    fn compatibility_is_symmetric_and_matches_rfc() {
        let all = [
            Req, Rep, Dealer, Router, Push, Pull, Pub, Sub, XPub, XSub, Pair,
        ];
        for a in all {
            for b in all {
                assert_eq!(a.is_compatible(b), b.is_compatible(a), "{a} {b}");
            }
            assert_eq!(SocketType::from_name(a.as_str().as_bytes()), Some(a));
        }
        assert!(!Req.is_compatible(Req));
        assert!(!Rep.is_compatible(Router));
        assert!(Dealer.is_compatible(Dealer));
        assert!(Pub.is_compatible(Sub) && XPub.is_compatible(XSub) && Pub.is_compatible(XSub));
        assert!(!Pub.is_compatible(Pub) && !Sub.is_compatible(Sub) && !Pair.is_compatible(Push));
    }
}
