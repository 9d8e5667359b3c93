"""Built-in tool implementations that the manifests in tool_manifests/ bind to."""
