"""Searches over genomes: the interface, the full-evaluation baselines, and the loop that runs them."""

from surrogate_emo.search.base import Search
from surrogate_emo.search.baselines import NSGA2Search, RandomSearch
from surrogate_emo.search.runner import TrialRunner
from surrogate_emo.search.surrogate import SurrogateSearch
from surrogate_emo.search.botorch_mobo import BoTorchSearch  # noqa: E402  (builds on SurrogateSearch)

SEARCHES: dict[str, type[Search]] = {"nsga2": NSGA2Search, "random": RandomSearch, "surrogate": SurrogateSearch,
                                     "botorch": BoTorchSearch}

__all__ = ["SEARCHES", "BoTorchSearch", "NSGA2Search", "RandomSearch", "Search", "SurrogateSearch", "TrialRunner"]
