"""Issue 4: the attack corpus, properties, faults, load and log hygiene (see SECURITY.md)."""
