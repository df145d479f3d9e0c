"""The admin API's operations (specs/admin.yaml): the ASE's back office."""
