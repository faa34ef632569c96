"""llmcompiler: parallel function calling for LLM agents, on the standard library alone."""
