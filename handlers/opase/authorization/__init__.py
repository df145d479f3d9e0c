"""The GNAP authorization server's domain: grants and their state machine, interaction
policy, access tokens, outgoing-payment limits over ISO 8601 repeating intervals, and token
introspection for the resource server. The HTTP handlers are `opase.api.auth.grant` and
`opase.api.auth.token`; they call in here."""
