"""
Weighted rendezvous (highest random weight) hashing, used to choose the replacement for an
unusable sticky route deterministically (pitfall 8): every request of the session, and every
proxy process with the same configuration, lands on the same replacement, and only the
sessions of the lost member move.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Collection, Sequence

from .member import Member, MemberStatus

__all__ = ["choose_replacement", "rank_members", "rendezvous_score"]

_SCALE = float(2**64)
_ACTIVE = MemberStatus.ACTIVE
_STANDBY = MemberStatus.STANDBY


def rendezvous_score(key: str, member: Member) -> float:
    """
    The weighted rendezvous score of a member for a key: C{loadfactor / -ln(u)} where C{u} in
    (0, 1) comes from BLAKE2b of the key and the member's name, so it is the same in every
    process (unlike Python's salted C{hash()}).

    @param key: what is being placed, e.g. a route.
    @param member: the member.
    @return: the score; higher wins.
    """
    data = f"{key}\x00{member.name}".encode("utf-8", "surrogatepass")
    digest = hashlib.blake2b(data, digest_size=8, person=b"twisted_lb-hrw").digest()
    uniform = (int.from_bytes(digest, "big") + 0.5) / _SCALE
    return member.loadfactor / -math.log(uniform)


def rank_members(key: str, members: Sequence[Member]) -> tuple[Member, ...]:
    """
    The members in rendezvous order for a key, best first (configuration order on equal
    scores).

    @param key: what is being placed, e.g. a route.
    @param members: the candidate members.
    @return: the members, best first.
    """
    scored = sorted(
        ((-rendezvous_score(key, member), index) for index, member in enumerate(members))
    )
    return tuple(members[index] for _, index in scored)


def choose_replacement(
    ranking: Sequence[Member], trial: Member | None, exclude: Collection[Member]
) -> Member | None:
    """
    The replacement for an unusable sticky route: among the members that take new sessions and
    are usable and not excluded, those of the lowest lbset (active before standby), and of
    these the first in C{ranking}.

    @param ranking: all members in rendezvous order for the route (see L{rank_members}).
    @param trial: the member in error that may take a retry-timer trial request, if any.
    @param exclude: members already tried for this request.
    @return: the replacement, or C{None} if no member qualifies.
    """
    best = None
    best_tier = 0
    for member in ranking:
        status = member.status
        if status is _ACTIVE:
            tier = member.lbset * 2
        elif status is _STANDBY:
            tier = member.lbset * 2 + 1
        else:
            continue
        if (
            (best is None or tier < best_tier)
            and (not member.in_error or member is trial)
            and member not in exclude
        ):
            best = member
            best_tier = tier
    return best
