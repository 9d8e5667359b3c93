"""Imports from and exports to other ecosystems: OpenAI function schemas, LangChain, BMTools plugins, MCP."""
