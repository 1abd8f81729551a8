"""twistd reactor plugin: C{twistd --reactor=lbepoll} (see L{twisted_lb.reactor})."""

from twisted.application.reactors import Reactor

lbepoll = Reactor(
    "lbepoll",
    "twisted_lb.reactor",
    "epoll reactor without the legacy log context per I/O event (twisted_lb's workers use it)",
)
