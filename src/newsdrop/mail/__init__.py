"""The store -> subscribers' inboxes: what is due, the messages, sending, the ledger."""
