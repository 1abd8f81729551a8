"""
The lookup tables a balancer precomputes from its member list, so that picking a member does
as little work as possible.  Rebuilt whenever the members, or a member's route, lbset or status,
change.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from .member import Member, MemberStatus
from .pick import Pick
from .rendezvous import rank_members

__all__ = ["Tables"]

_ACTIVE = MemberStatus.ACTIVE
_STANDBY = MemberStatus.STANDBY


@attrs.frozen(eq=False)
class Tables:
    """
    Precomputed views of a balancer's members.

    @ivar by_name: member by name.
    @ivar by_route: members by route; normal members first, then standby ones, in configuration
        order.
    @ivar tiers: per lbset, lowest first: its active members and its standby members, in
        configuration order.
    @ivar plain: the non-sticky L{Pick} of each member.
    @ivar sticky: the sticky L{Pick} of each member (route honoured).
    @ivar ranks: cache of the rendezvous ranking of all members per route (see L{ranking}).
    """

    members: tuple[Member, ...]
    by_name: dict[str, Member]
    by_route: dict[str, tuple[Member, ...]]
    tiers: tuple[tuple[tuple[Member, ...], tuple[Member, ...]], ...]
    plain: dict[Member, Pick]
    sticky: dict[Member, Pick]
    ranks: dict[str, tuple[Member, ...]] = attrs.field(factory=dict)

    @classmethod
    def build(cls, members: Sequence[Member], balancer: str = "") -> Tables:
        """
        Compute the tables.

        @param members: the members, in configuration order.
        @param balancer: the balancer's name, for error messages.
        @return: the tables.
        @raise TypeError: if an item is not a L{Member}.
        @raise ValueError: if two members have the same name.
        """
        members = tuple(members)
        by_name: dict[str, Member] = {}
        by_route: dict[str, list[Member]] = {}
        for member in members:
            if not isinstance(member, Member):
                raise TypeError(f"not a Member: {member!r}")
            if member.name in by_name:
                raise ValueError(f"duplicate member name {member.name!r} in {balancer!r}")
            by_name[member.name] = member
            by_route.setdefault(member.route, []).append(member)
        lbsets = sorted({member.lbset for member in members})
        return cls(
            members=members,
            by_name=by_name,
            by_route={
                route: tuple(sorted(holders, key=lambda m: m.status is _STANDBY))
                for route, holders in by_route.items()
            },
            tiers=tuple(
                (
                    tuple(m for m in members if m.lbset == lbset and m.status is _ACTIVE),
                    tuple(m for m in members if m.lbset == lbset and m.status is _STANDBY),
                )
                for lbset in lbsets
            ),
            plain={member: Pick(member) for member in members},
            sticky={
                member: Pick(member, sticky=True, session_route=member.route) for member in members
            },
        )

    def ranking(self, route: str) -> tuple[Member, ...]:
        """
        All members in weighted rendezvous order for a route, best first (cached).

        @param route: the route.
        @return: the members, best first.
        """
        ranking = self.ranks.get(route)
        if ranking is None:
            ranking = self.ranks[route] = rank_members(route, self.members)
        return ranking
