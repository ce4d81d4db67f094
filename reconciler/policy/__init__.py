"""Turns rules into decisions: selectors, precedence, cascade, tenants, windows, schedule."""
