"""Email: the messages we send (plain text, no personal data beyond the recipient) and the
SMTP sender the worker uses (``IDP_SMTP_URL``: ``smtp://[user:password@]host[:port]``, or
``smtps://`` for implicit TLS; ``?starttls=true`` to upgrade a plain connection)."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage
from urllib.parse import parse_qs, unquote, urlsplit

from sqlalchemy.orm import Session

from idp.outbox import DeliveryError, OpenedMessage, UndeliverableError, queue_email

SERVICE = "Public Services Sign-in"


def send_code(session: Session, *, to: str, code: str, purpose: str) -> None:
    action = "create your account" if purpose == "signup" else "reset your password"
    body = (f"Your {SERVICE} security code is {code}\n\n"
            f"Enter it to {action}. It expires in 10 minutes.\n\n"
            "If you did not ask for this code, you can ignore this email.\n")
    queue_email(session, to=to, subject=f"{SERVICE} security code", body=body)


def send_already_registered(session: Session, *, to: str) -> None:
    body = (f"Someone tried to create a {SERVICE} account with this email address, but you already have one.\n\n"
            "If this was you, sign in instead, or reset your password if you have forgotten it.\n"
            "If it was not you, you do not need to do anything.\n")
    queue_email(session, to=to, subject=f"You already have a {SERVICE} account", body=body)


def send_credential_changed(session: Session, *, to: str, what: str) -> None:
    body = (f"The {what} of your {SERVICE} account was changed.\n\n"
            "If this was you, you do not need to do anything.\n"
            "If it was not you, reset your password now and check your passkeys and sessions.\n")
    queue_email(session, to=to, subject=f"Your {SERVICE} {what} was changed", body=body)


def send_account_locked(session: Session, *, to: str, minutes: int, dedupe_key: str) -> None:
    body = (f"There were too many failed attempts to sign in to your {SERVICE} account, so we have paused "
            f"sign-in for {minutes} minutes.\n\n"
            "If this was you, wait and try again, or reset your password.\n"
            "If it was not you, your password is still safe, but consider adding a passkey.\n")
    queue_email(session, to=to, subject=f"Sign-in to your {SERVICE} account is paused", body=body,
                dedupe_key=dedupe_key)


def send_account_deleted(session: Session, *, to: str) -> None:
    body = f"Your {SERVICE} account has been deleted, and every service you used it with has been signed out.\n"
    queue_email(session, to=to, subject=f"Your {SERVICE} account has been deleted", body=body)


class SmtpSender:
    """Delivers ``email`` outbox messages over SMTP."""

    def __init__(self, smtp_url: str, mail_from: str, timeout: float = 10.0) -> None:
        parts = urlsplit(smtp_url)
        if parts.scheme not in {"smtp", "smtps"} or not parts.hostname:
            raise ValueError("IDP_SMTP_URL must look like smtp://host:port or smtps://host:port")
        self.host, self.port = parts.hostname, parts.port or (465 if parts.scheme == "smtps" else 25)
        self.implicit_tls = parts.scheme == "smtps"
        self.starttls = parse_qs(parts.query).get("starttls", ["false"])[0] == "true"
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.mail_from, self.timeout = mail_from, timeout

    def __call__(self, message: OpenedMessage) -> None:
        email = self._email(message)
        try:
            with self._connect() as smtp:
                smtp.send_message(email)
        except smtplib.SMTPException as error:
            if _permanent(error):
                raise UndeliverableError(str(error)) from None
            raise DeliveryError(str(error)) from None

    def _email(self, message: OpenedMessage) -> EmailMessage:
        """The email; UndeliverableError for a recipient or subject that cannot be a header value
        (the email package refuses CR and LF, RFC 5322 §2.2: a header is one line)."""
        email = EmailMessage()
        email["From"] = self.mail_from  # the operator's setting: if it is bad, every message waits for the fix
        try:
            email["To"], email["Subject"] = message.recipient, message.subject or SERVICE
        except ValueError as error:
            raise UndeliverableError(f"not a valid header: {error}") from None
        email["Message-ID"] = f"<{message.id}@{self.host}>"
        email.set_content(message.body)
        return email

    def _connect(self) -> smtplib.SMTP:
        if self.implicit_tls:
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout)
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            if self.starttls:
                smtp.starttls()
        if self.username:
            smtp.login(self.username, self.password or "")
        return smtp


def _permanent(error: smtplib.SMTPException) -> bool:
    """RFC 5321 §4.2.1: a 5yz reply to RCPT (every recipient refused: here, the only one) or to DATA
    is a permanent failure of this message. A 5yz to AUTH or MAIL FROM is our configuration's
    fault and would refuse every message alike, so those are retried until it is fixed."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return bool(error.recipients) and all(code >= 500 for code, _ in error.recipients.values())
    return isinstance(error, smtplib.SMTPDataError) and error.smtp_code >= 500
