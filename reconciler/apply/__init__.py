"""Executes a plan: batches, health gates, journal, lock, rollback, emergency."""
