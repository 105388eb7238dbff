"""Tests of tool pinning (runtimed.pins)."""
