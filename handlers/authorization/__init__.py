"""The GNAP authorization server's domain: grants and their state machine, interaction
policy, access tokens, outgoing-payment limits over ISO 8601 repeating intervals, and token
introspection for the resource server. The HTTP handlers are `opase.grants` and
`opase.tokens`; they call in here."""
