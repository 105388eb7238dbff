"""Test support: real processes (the daemon, upstream servers) on loopback."""
