"""Webhooks: inbound triggers checked by their sender's signature, outbound events from an outbox."""
