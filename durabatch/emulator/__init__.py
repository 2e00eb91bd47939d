"""The provider emulator: a real HTTP server speaking the OpenAI, Anthropic and Gemini batch APIs."""
