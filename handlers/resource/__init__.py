"""The resource server's shared pieces: authorization through token introspection, and
cursor pagination of list operations. No HTTP handlers here: they live beside the other
operations (`opase.incoming_payments`, ...)."""
