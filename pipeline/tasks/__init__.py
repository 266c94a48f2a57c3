"""The Luigi tasks: DownloadCorpus -> BuildVocab -> TrainRNN -> ExportSavedModel ->
PromoteVersion -> BatchScore, and ReviewQueue and MonitorScores on a day's scores.

Each task only wires: read inputs, call a pure module of ``pipeline.data``, ``model``,
``serving``, ``scoring`` or ``monitoring``, write outputs atomically. TensorFlow is
imported inside ``run()``, so checking a complete chain stays fast. Output folders are
named by a fingerprint of the task's significant parameters and of its upstream tasks (as
gokart does), so a changed setting or corpus makes new targets instead of reusing stale
ones. Every setting lives in luigi.cfg.

One module per stage; this package is the top of the import graph: nothing in
``pipeline`` imports it. ``luigi --module pipeline.tasks <Task>`` finds every task here.
"""
import luigi.tools.range  # noqa: F401 - makes RangeDaily available for backfills

from pipeline.settings import PipelineSettings, outputs_root, serving_base
from pipeline.tasks import console  # noqa: F401 - what a run shows in a terminal (events)
from pipeline.tasks.base import PipelineTask, StatusReporting, TodayParameter
from pipeline.tasks.batch_score import BatchScore
from pipeline.tasks.data import PINNED_CORPUS_SHA256, UCI_CORPUS_URL, BuildVocab, DownloadCorpus
from pipeline.tasks.monitoring import DayOfScores, DriftDetected, MonitorScores, ReviewQueue
from pipeline.tasks.publishing import ExportSavedModel, PromoteVersion, ServedVersionTarget
from pipeline.tasks.scoring import MessagesFile, ScoreLocally, ScoreShard, ScoringTask
from pipeline.tasks.spark import InputLocationTarget, MessagesLocation, ScoreOnSpark, SparkSettings
from pipeline.tasks.training import ModelSettings, TrainRNN

__all__ = [
    "BatchScore", "BuildVocab", "DayOfScores", "DownloadCorpus", "DriftDetected",
    "ExportSavedModel", "InputLocationTarget", "MessagesFile", "MessagesLocation",
    "ModelSettings", "MonitorScores", "PINNED_CORPUS_SHA256", "PipelineSettings",
    "PipelineTask", "PromoteVersion", "ReviewQueue", "ScoreLocally", "ScoreOnSpark",
    "ScoreShard", "ScoringTask", "ServedVersionTarget", "SparkSettings", "StatusReporting",
    "TodayParameter", "TrainRNN", "UCI_CORPUS_URL", "outputs_root", "serving_base",
]
