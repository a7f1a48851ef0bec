"""`python -m zmqservice` runs the command line."""

from zmqservice.cli import entry

entry()
