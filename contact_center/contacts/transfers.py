"""Transfers: who could take a contact on another skill or language, and the move itself (a
note for the next advisor; refused when nobody signed in could serve it, unless asked to queue
anyway)."""

from __future__ import annotations

from dataclasses import dataclass

from contact_center.contacts.core import ContactCore, agent_id_of, primary_channel
from contact_center.contacts.states import ContactState
from contact_center.contacts.transfer_targets import Targets, transfer_targets
from contact_center.db.engine import transaction
from contact_center.db.models import Contact, Role
from contact_center.errors import ClientError, Conflict, ErrorCode
from contact_center.identity.auth import Identity
from contact_center.identity.users import display_names, list_users
from routing.errors import UnsupportedLanguageError
from routing.scoring import AgentView


@dataclass(frozen=True)
class TransferChoices:
    """What the picker offers: the skills and languages that exist, and who could take it."""

    skills: list[str]
    languages: list[str]
    now: list[str]
    """Names of the advisors who could be offered it at once."""
    later: list[str]
    """Names of those signed in with the skill and language but busy, away or in wrap-up."""


class Transfers(ContactCore):
    """Moving a connected contact to another skill or language."""

    async def targets_for(
        self, contact: Contact, *, skills: dict[str, int], language: str | None,
        exclude: int | None, agents: list[AgentView] | None = None,
    ) -> Targets:
        return transfer_targets(
            self.router.policy,
            agents if agents is not None else await self.router.agent_views(),
            channel=primary_channel(contact.channels).value,
            language=language or contact.language,
            skills=skills,
            exclude=agent_id_of(exclude) if exclude is not None else None,
        )

    async def transfer_choices(
        self, contact: Contact, *, skills: dict[str, int], language: str | None,
        exclude: int | None,
    ) -> TransferChoices:
        """The skills advisors have (accounts and the router), the routing languages, and who
        could take ``contact`` on ``skills`` and ``language`` (``exclude``: the asker)."""
        agents = await self.router.agent_views()
        targets = await self.targets_for(
            contact, skills=skills, language=language, exclude=exclude, agents=agents
        )
        known = {skill for agent in agents for skill in agent.skills}
        ids = {int(i) for i in (*targets.now, *targets.later) if i.isdigit()}
        async with transaction(self.db) as session:
            for user in await list_users(session, role=Role.ADVISOR):
                if not user.disabled:
                    known.update(user.skills)
            names = await display_names(session, user_ids=ids)

        def named(agent_ids: tuple[str, ...]) -> list[str]:
            return [names.get(int(i), f"#{i}") if i.isdigit() else i for i in agent_ids]

        return TransferChoices(
            skills=sorted(known),
            languages=list(self.router.policy.languages),
            now=named(targets.now),
            later=named(targets.later),
        )

    async def transfer(
        self,
        identity: Identity,
        contact_id: str,
        *,
        skills: dict[str, int],
        language: str | None,
        note: str | None = None,
        queue_anyway: bool = False,
    ) -> Contact:
        """Back to the queue on ``skills``/``language`` with ``note`` for the next advisor;
        refused (``nobody_can_serve``) when no other signed-in advisor could ever take it."""
        contact = await self.contact_for(identity, contact_id)
        if contact.state != ContactState.CONNECTED:
            raise Conflict(f"contact {contact_id} is {contact.state}; only a connected one moves")
        if language is not None and language not in self.router.policy.languages:
            raise UnsupportedLanguageError(f"language {language!r} is not routed here")
        if not queue_anyway:
            targets = await self.targets_for(
                contact, skills=skills, language=language, exclude=identity.user_id
            )
            if not targets.anyone:
                wanted = ", ".join(f"{s} ≥ {level}" for s, level in skills.items())
                raise ClientError(
                    f"no other signed-in advisor speaks {language or contact.language} with "
                    f"{wanted}: nobody could take it; send queue_anyway to let it wait",
                    code=ErrorCode.NOBODY_CAN_SERVE,
                )
        note = (note or "").strip() or None
        contact = await self.back_to_queue(
            contact_id,
            actor=identity.ref,
            kind="transferred",
            reason="transferred",
            data={
                "skills": skills,
                "language": language,
                "from_advisor": identity.user_id,
                "from_advisor_name": identity.display_name,
                "note": note,
                "queue_anyway": queue_anyway,
            },
            values={"skills": skills, "language": language or contact.language},
        )
        await self.bus.publish(identity.ref, self.state_message(contact, reason="transferred_away"))
        await self.router.transfer(contact_id, skills=skills, language=language, exclude_agent=True)
        return contact
