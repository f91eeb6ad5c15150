"""Stage registry: the names a pipeline's `stage:` key may use. Kept out of the package's __init__, so
importing one stage (or curate.stages.base) loads that stage alone, not every stage."""

from curate.stages.balance import BalanceStage
from curate.stages.base import Stage
from curate.stages.classify import ClassifyStage
from curate.stages.dedup import DedupStage
from curate.stages.langid import LangIdStage
from curate.stages.normalize import NormalizeStage
from curate.stages.pii import PiiStage
from curate.stages.quality import QualityStage
from curate.stages.retrieve import RetrieveStage
from curate.stages.split import SplitStage

STAGES: dict[str, type[Stage]] = {
    "normalize": NormalizeStage,
    "langid": LangIdStage,
    "quality": QualityStage,
    "pii": PiiStage,
    "dedup": DedupStage,
    "balance": BalanceStage,
    "split": SplitStage,
    "retrieve": RetrieveStage,
    "classify": ClassifyStage,
}
