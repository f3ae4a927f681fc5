"""The identity provider: the web application speaking HTTP and OpenID Connect.

The Flask app factory lives in :mod:`idp.app`; this package import stays free of
Flask so that the domain packages can share :mod:`store.db`.
"""
