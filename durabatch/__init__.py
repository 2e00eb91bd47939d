"""durabatch: LLM provider batch jobs (OpenAI, Anthropic, Gemini) run durably on Temporal."""

__version__ = "0.1.0"
