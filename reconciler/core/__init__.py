"""Shared basics of every stage: errors, time, confined paths, bounded JSON, output sanitising, secret scrubbing."""
