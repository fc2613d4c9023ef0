"""MsGine."""
