"""Unit tests of zmqservice.transport: what owns sockets, tested piece by piece."""
