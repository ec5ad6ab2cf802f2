"""The fleet simulator: vehicles, building sensors and heartbeat devices emitting contract events
into Kafka, rolled JSON-lines files or stdout, with scenarios whose expected alarms are known.

    from generator import SimConfig, Simulator
    from generator.simulator import expectations
"""

from generator.config import SimConfig
from generator.simulator import Simulator

__all__ = ["SimConfig", "Simulator"]
