"""Backends: where the live pause state comes from and where changes go."""
