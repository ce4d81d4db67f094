"""Carries promotable rules from one environment into the next, on a branch."""
