"""Submitted forms (idp/forms.py): each rendered form's single-use token, kept with the outcome of
the one submission that used it, so a second submission is answered with that outcome."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from store.db import Base, utcnow


class FormSubmission(Base):
    __tablename__ = "form_submissions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256 of the form token
    path: Mapped[str] = mapped_column(String(2000))  # where the form was posted
    # The local path it led to; None while it runs, and when it ended without one (back to the form).
    outcome: Mapped[str | None] = mapped_column(String(2000))
    flow: Mapped[dict[str, object] | None] = mapped_column(JSON)  # flow-cookie values it set (ids only)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
