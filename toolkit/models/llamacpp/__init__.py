"""The embedded CPU backend: GGUF models through llama-cpp-python (`backend.LlamaCppBackend`).

Kept empty of imports: `files` (which model file a string names) must load without llama_cpp."""
