"""The built-in identity provider's pages; see `app`."""
