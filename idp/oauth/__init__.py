"""OAuth 2.0 / OpenID Connect machinery: Authlib grants, endpoints and our storage hooks."""
