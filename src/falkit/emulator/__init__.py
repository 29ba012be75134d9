"""An offline Fal: a local server speaking Fal's queue, run, storage and webhook protocols.

It renders real placeholder images, validates input like the catalog's models, limits
concurrency like a Fal account, signs webhooks, and can inject network faults. falkit's own
tests run against it, and so can users' CI (``falkit emulator`` serves it)::

    from falkit.emulator import EmulatorConfig, Fault, run_emulator

    with run_emulator(EmulatorConfig(latency=0.2)) as emu:
        settings = emu.settings()            # falkit Settings pointing at it
        emu.faults.add(Fault(route="submit", kind="5xx"))
        ...
        assert emu.stats.submits == 1
"""

from falkit.emulator.app import create_app
from falkit.emulator.config import EmulatorConfig, Stats
from falkit.emulator.engine import Engine
from falkit.emulator.faults import Fault, FaultSet
from falkit.emulator.server import EmulatorServer, Listening, run_emulator, serve

__all__ = [
    "EmulatorConfig",
    "EmulatorServer",
    "Engine",
    "Fault",
    "FaultSet",
    "Listening",
    "Stats",
    "create_app",
    "run_emulator",
    "serve",
]
