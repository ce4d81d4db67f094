"""Day-2 views over state and live: drift, doctor, lint, explain, history, export, diff, notify, metrics."""
