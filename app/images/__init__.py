"""Images into the registry: references, sources, a streaming registry endpoint and the copy
(`regwiz images push`)."""
