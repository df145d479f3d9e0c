"""Code generated from specs/ by codegen/. Never edited by hand."""
