"""Benchmarks: each prints its numbers and a ratio on its last line (DESIGN.md section 9)."""
