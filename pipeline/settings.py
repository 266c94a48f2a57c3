"""``[pipeline]`` of luigi.cfg: the settings every task and operator command shares. Tasks
and console scripts read them here, so no module needs to import the Luigi tasks."""
from __future__ import annotations

from pathlib import Path

import luigi


class PipelineSettings(luigi.Config):
    """``[pipeline]``: settings shared by every task (``--pipeline-outputs-root`` ...)."""

    @classmethod
    def get_task_family(cls) -> str:
        return "pipeline"  # the section's name, not the class's

    outputs_root = luigi.Parameter(default="outputs",
                                   description="Folder that holds every target.")
    model_name = luigi.Parameter(default="spam_ham",
                                 description="TF Serving model name and base-path folder.")


def outputs_root() -> Path:
    return Path(PipelineSettings().outputs_root)


def serving_base() -> Path:
    """The ``--model_base_path`` of tensorflow_model_server."""
    return outputs_root() / "serving" / PipelineSettings().model_name
