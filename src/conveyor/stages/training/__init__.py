"""Training, on MLflow: candidates, tracking, the registry, the promotion gate, the champion.

The only package that imports MLflow; serving loads its model through `load_champion`.
"""

from conveyor.stages.training._registry import CHAMPION, Champion, load_champion, promote
from conveyor.stages.training._train import train

__all__ = ["CHAMPION", "Champion", "load_champion", "promote", "train"]
