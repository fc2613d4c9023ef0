"""The MsGine gateway: HTTP API, storage, delivery worker and carrier connectors.

Needs the ``server`` extra. Nothing here is imported by the SDK.
"""
