"""The provider emulator: a real HTTP server speaking the OpenAI, Anthropic and Gemini batch APIs.

    async with run_emulator(EmulatorConfig(api_keys=["k"]), port=0) as emu:
        emu.url  # OpenAI base URL is emu.url + "/v1"; Anthropic and Gemini use emu.url

Deterministic answers are in `durabatch.emulator.content`; see docs/emulator.md.
"""

from durabatch.emulator.config import EmulatorConfig
from durabatch.emulator.content import Usage, expected_chat_response, expected_usage
from durabatch.emulator.faults import BATCH_FAULTS, WIRE_FAULTS, FaultSpec
from durabatch.emulator.server import RunningEmulator, run_emulator, serve_forever
from durabatch.emulator.state import EmulatorState

__all__ = [
    "BATCH_FAULTS",
    "WIRE_FAULTS",
    "EmulatorConfig",
    "EmulatorState",
    "FaultSpec",
    "RunningEmulator",
    "Usage",
    "expected_chat_response",
    "expected_usage",
    "run_emulator",
    "serve_forever",
]
