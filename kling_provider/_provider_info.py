"""What ``airflow providers list/hooks``, ``airflow config list`` and the connection form show for
this provider.

Kept as data (no imports of hooks or operators) so Airflow can read it without paying for them.
"""

from __future__ import annotations

from typing import Any

from kling_provider import __version__

PROVIDER_INFO: dict[str, Any] = {
    "package-name": "airflow-provider-kling",
    "name": "Kling (EvoLink)",
    "description": "Generate videos with Kling 3.0 through EvoLink's unified video API.",
    "versions": [__version__],
    "connection-types": [
        {
            "connection-type": "kling",
            "hook-class-name": "kling_provider.hooks.kling.KlingHook",
            "hook-name": "Kling video (EvoLink)",
            "ui-field-behaviour": {
                "hidden-fields": ["schema", "login", "port"],
                "relabeling": {"host": "API host", "password": "API key"},
                "placeholders": {
                    "host": "https://api.evolink.ai",
                    "password": "sk-...",
                },
            },
            "conn-fields": {
                "files_host": {
                    "label": "Files host",
                    "description": "Base URL of EvoLink's file API, used to upload local images.",
                    "schema": {"type": ["string", "null"], "default": "https://files-api.evolink.ai"},
                },
                "rate_limit_rpm": {
                    "label": "Requests per minute",
                    "description": "Request budget per minute for this key in one process (polls and submits).",
                    "schema": {"type": ["number", "null"], "default": 120},
                },
                "timeout": {
                    "label": "HTTP timeout (seconds)",
                    "description": "How long one request may wait for EvoLink to answer (connecting: 10 s at most).",
                    "schema": {"type": ["number", "null"], "default": 30},
                },
            },
        }
    ],
    "integrations": [
        {
            "integration-name": "Kling (EvoLink)",
            "external-doc-url": "https://evolink.ai",
            "tags": ["service"],
        }
    ],
    "hooks": [
        {"integration-name": "Kling (EvoLink)", "python-modules": ["kling_provider.hooks.kling"]},
    ],
    "triggers": [
        {"integration-name": "Kling (EvoLink)", "python-modules": ["kling_provider.triggers.kling"]},
    ],
    "operators": [
        {
            "integration-name": "Kling (EvoLink)",
            "python-modules": [
                "kling_provider.operators.kling",
                "kling_provider.operators.budget",
                "kling_provider.operators.review",
            ],
        },
    ],
    "extra-links": ["kling_provider.operators.kling.KlingVideoLink"],
    # Also registered through the airflow.plugins entry point (pyproject.toml), as official providers do.
    "plugins": [
        {
            "name": "kling_review_media",
            "plugin-class": "kling_provider.plugins.review_media.KlingReviewMediaPlugin",
        }
    ],
    # Every ``conf.get*("kling", ...)`` in the package is declared here (tests/test_provider_config.py
    # scans the source), so ``airflow config list`` shows it. Defaults are strings, as in airflow.cfg,
    # and equal the ``fallback=`` in the code, which applies where provider config is not loaded.
    "config": {
        "kling": {
            "description": "Options of the Kling (EvoLink) video provider.",
            "options": {
                "default_deferrable": {
                    "description": (
                        "Whether the Kling operators wait in the triggerer (deferrable) when a task does not\n"
                        "pass ``deferrable``. Kling generations take minutes, so they defer by default: set\n"
                        "False in deployments without a triggerer and they wait on the worker.\n"
                        "``[operators] default_deferrable = True`` turns deferral on as well.\n"
                    ),
                    "version_added": "0.1.0",
                    "type": "boolean",
                    "example": "False",
                    "default": "True",
                },
                "trigger_settle_seconds": {
                    "description": (
                        "Least time, in seconds, the Kling trigger waits before its first status query\n"
                        "(``PollPolicy.settle``; a task's ``poll_policy`` overrides it). An event handled before\n"
                        "the scheduler has seen the deferring task exit fails the task (apache/airflow#72716):\n"
                        "a heavily loaded scheduler may want more. The provider's pytest fixtures set 0, since\n"
                        "``dag.test()`` runs triggers in line.\n"
                    ),
                    "version_added": "0.1.0",
                    "type": "float",
                    "example": "10.0",
                    "default": "5.0",
                },
            },
        }
    },
}
