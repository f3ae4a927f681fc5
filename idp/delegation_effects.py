"""What a delegation change does outside the consent domain (delegation.md "Revoke / suspend"):
revoke the tokens issued under it, back-channel logout of the acting sessions, and emails to
both people through the outbox (never the operator's reason; none to a suppressed delegate)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from consent.delegation_models import Delegation
from idp.acting import families_under
from idp.backchannel import _queue as queue_client_logout
from idp.mail import SERVICE
from idp.models import Account, LoginSession
from idp.oauth.tokens import revoke_family
from idp.outbox import queue_email

NEWS = {
    "accept": ("{delegate} accepted", "{delegate} can now act for {principal} as their {type}."),
    "approve": ("{principal} approved your request", "{delegate} can now act for {principal} as their {type}."),
    "decline": ("A delegation was declined", "The delegation between {principal} and {delegate} was declined."),
    "revoke": ("A delegation has ended", "{delegate} can no longer act for {principal}. "
                                         "Any services they were using for {principal} have been signed out."),
    "expire": ("A delegation has ended", "{delegate}'s delegation to act for {principal} has reached its end."),
    "suspend": ("A delegation is paused", "{delegate} cannot act for {principal} for now."),
    "resume": ("A delegation is back in force", "{delegate} can act for {principal} again."),
    "renew": ("A delegation was renewed", "{delegate} can act for {principal} until {ends}."),
    "remind": ("A delegation ends soon", "{delegate}'s delegation to act for {principal} ends on {ends}. "
                                         "{principal} can renew it from 'People who can act for you'."),
    "age": ("A delegation ends soon", "{principal} will soon be old enough to manage their own account; "
                                      "{delegate}'s delegation as their parent will then be paused, unless "
                                      "{principal}, signed in to their own account, agrees that it continues. "
                                      "A parent can give their child their own account from "
                                      "'People you can act for'."),
    "continue": ("{principal} agreed that {delegate} keeps helping",
                 "{delegate} can keep acting for {principal} until {ends}, as {principal} agreed."),
}


class ServiceEffects:
    """``consent.delegations.DelegationEffects`` for the running service."""

    def end_access(self, session: Session, delegation: Delegation) -> None:
        for family in families_under(session, delegation.id):
            revoke_family(session, family.id, "delegation_ended")
            login = session.get(LoginSession, family.session_id) if family.session_id else None
            # The agency's session is for the principal (sub) in the delegate's browser session (sid).
            queue_client_logout(session, account_id=family.account_id, client_ids=[family.client_id],
                                sid=login.sid if login else None, event=f"delegation:{delegation.id}:{family.id}")

    def notify(self, session: Session, delegation: Delegation, what: str, *, tell_delegate: bool = True) -> None:
        notify(session, delegation, what, tell_delegate=tell_delegate)


def notify(session: Session, delegation: Delegation, what: str, *, tell_delegate: bool = True) -> None:
    if what not in NEWS:
        return
    principal = session.get(Account, delegation.principal_id)
    delegate = session.get(Account, delegation.delegate_id) if delegation.delegate_id else None
    words = {"principal": principal.name if principal else "someone", "type": delegation.type,
             "delegate": delegate.name if delegate else (delegation.invite_email or "the person invited"),
             "ends": delegation.ends_at.strftime("%-d %B %Y") if delegation.ends_at else "further notice"}
    subject, body = (part.format(**words) for part in NEWS[what])
    recipients = [principal.email if principal else None]
    if tell_delegate and delegation.notify:
        recipients.append(delegate.email if delegate else delegation.invite_email)
    for to in {address for address in recipients if address}:
        queue_email(session, to=to, subject=f"{SERVICE}: {subject}",
                    body=f"{body}\n\nSee 'People who can act for you' and 'People you can act for' in your account.\n",
                    dedupe_key=f"delegation:{delegation.id}:{what}:{delegation.status_changed_at:%Y%m%d%H%M%S%f}:{to}"[:200])


def send_invitation(session: Session, *, to: str, principal: Account, delegation: Delegation, link: str,
                    passed_on_by: Account | None = None) -> None:
    """The single-use link to the invitee; for an onward delegation, the principal is told too."""
    asked = (f"{principal.name} has asked you" if passed_on_by is None
             else f"{passed_on_by.name}, who helps {principal.name}, has asked you")
    body = (f"{asked} to help {'them' if passed_on_by is None else principal.name} with public services "
            f"as their {delegation.type}.\n\n"
            f"To accept or decline, open this link within 7 days (it works once):\n{link}\n\n"
            f"You will sign in as yourself, or create a {SERVICE} account first.\n"
            "If you do not know this person, you can ignore this email.\n")
    queue_email(session, to=to, subject=f"{(passed_on_by or principal).name} asked you to help "
                f"{'them' if passed_on_by is None else principal.name}", body=body)
    if passed_on_by is not None:
        queue_email(session, to=principal.email,
                    subject=f"{SERVICE}: {passed_on_by.name} asked someone else to help you",
                    body=f"{passed_on_by.name} has invited {to} to help you too, with no more than "
                         f"{passed_on_by.name} can do. "
                         "You can stop this at any time in 'People who can act for you'.\n")


def send_request(session: Session, *, to: str, delegate: Account) -> None:
    body = (f"{delegate.name} has asked to act for you with public services.\n\n"
            "Sign in and go to 'People who can act for you' to approve or decline within 14 days.\n"
            "If you do not know this person, decline the request.\n")
    queue_email(session, to=to, subject=f"{delegate.name} asked to act for you", body=body)
