"""The tamper-evident audit log: a hash chain of who did what, when, from where."""
