"""The command line: `opase serve | sandbox | migrate | admin`."""
