"""The request path: matching, reading and validating input, authenticating, running one
operation module, rendering the answer or the error. Imports the domain, never the reverse."""
