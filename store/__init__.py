"""The storage foundation under ``keys/``, ``consent/`` and ``idp/``: the declarative base and its
naming convention, UTC timestamps, engines and sessions (``store.db``), and the migrations runner
(``store.migrate``). It imports none of the packages above it (docs/architecture.md)."""
