"""The published methods as recipes: each a pipeline on this package's schemes, searches, study and reports.

A recipe module holds ``Settings`` (the dataclass of its file's table) and ``run(file, progress)``.
"""

from surrogate_emo.recipes import de_pruning, emomc, olmp, smoea

RECIPES = {"de": de_pruning, "emomc": emomc, "olmp": olmp, "smoea": smoea}

__all__ = ["RECIPES"]
