"""The resource server's operations (resource-server spec) and their shared steps."""
