"""Errors and value checks that every floor shares (the lowest floor: imports nothing of seqsched)."""
