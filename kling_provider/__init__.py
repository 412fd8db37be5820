"""Apache Airflow provider for Kling 3.0 video generation through EvoLink."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def get_provider_info() -> dict[str, Any]:
    """Airflow's provider manager calls this through the ``apache_airflow_provider`` entry point."""
    # Not at the top: every kling_provider.* import (the simulator's too) runs this file.
    from kling_provider._provider_info import PROVIDER_INFO

    return PROVIDER_INFO
