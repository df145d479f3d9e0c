"""Token introspection for resource servers in other processes (specs/introspection.yaml)."""
