"""The plan: a frozen value of changes and batches, and how it is rendered."""
