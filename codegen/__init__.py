"""Build-time code generation: specs/ -> generated/. Never imported by the server."""
