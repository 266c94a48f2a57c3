"""BatchScore: a file of messages scored with the live version's ``serving_default``
signature, by the engine its ``--engine`` picks in ``requires()`` (as Luigi's own Spark
examples choose their tasks): :class:`~pipeline.tasks.scoring.ScoreLocally` or
:class:`~pipeline.tasks.spark.ScoreOnSpark`. The scores are the engine's output."""
from __future__ import annotations

import luigi

from pipeline.tasks.scoring import ScoreLocally, ScoringTask
from pipeline.tasks.spark import ScoreOnSpark

ENGINES = {"local": ScoreLocally, "spark": ScoreOnSpark}


class BatchScore(ScoringTask, luigi.WrapperTask):
    """Score a file of messages with the live version's ``serving_default`` signature.

    ``--engine local`` (the default) scores in this process, or as ``--shards N``
    ScoreShard tasks joined in input order; ``--engine spark`` runs Apache Spark on the
    master of ``[spark]`` and writes a Parquet dataset. Either way the output is
    ``scores/<date>/<input name>.<format>``: this task's output is its engine's."""

    def requires(self):
        return ENGINES[self.engine](**self.param_kwargs)
