"""A demo agency service: a relying party that signs citizens in with Public Services Sign-in."""

from examples.agency_service.app import create_service

__all__ = ["create_service"]
