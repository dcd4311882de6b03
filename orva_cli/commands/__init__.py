"""The command groups of `orva`, one module per area; each exports `commands`."""
