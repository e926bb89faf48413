"""A loopback emulator of the Sqquid retail API, for testing pipelines and benchmarking.

    from sqquid_etl.sandbox import Sandbox, SandboxConfig, FaultConfig
    with Sandbox(SandboxConfig(seed=1, rate=None)) as sb:
        requests.post(sb.url + "/v1/login", json={"api_key": "sandbox-api-key"})
"""

from .app import Sandbox, SandboxConfig, Stats
from .data import Store
from .drift import DriftProfile
from .faults import FaultConfig

__all__ = ["Sandbox", "SandboxConfig", "FaultConfig", "DriftProfile", "Store", "Stats"]
