"""The authorization server's operations (auth-server, interaction and idp specs)."""
