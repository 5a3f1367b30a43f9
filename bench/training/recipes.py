"""Training recipes: the optimizer settings a paper trained a preset with.

A family declares its recipes in the registry entry (`recipes="module:RECIPES"`), a dict
preset name -> plain dict (standard library only, like configs):

    {"optim": {OptimSpec fields but total_steps}, "batch": int, "steps": int, "source": "citation"}

The key "*" is the family's recipe for presets it does not list (the -tiny ones). `recipe:
default` is the harness's own (DEFAULT_RECIPE), the same for every family.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from bench.training.optim import OptimSpec


class RecipeError(ValueError):
    """A family without a recipe for the preset, or a malformed recipe."""


@dataclass(frozen=True)
class Recipe:
    name: str  # "<preset or *> of <family>", or "default"
    optim: dict  # OptimSpec fields (without total_steps)
    source: str  # paper table / official config the values come from
    batch: int | None = None  # the paper's batch (recorded, not imposed)
    steps: int | None = None  # the paper's training steps (recorded, not imposed)
    notes: tuple = field(default_factory=tuple)

    def __post_init__(self):
        allowed = {f.name for f in fields(OptimSpec)} - {"total_steps"}
        unknown = set(self.optim) - allowed
        if unknown:
            raise RecipeError(f"recipe {self.name!r}: unknown optimizer field(s) {sorted(unknown)}; "
                              f"allowed: {sorted(allowed)}")
        try:
            OptimSpec(**self.optim)
        except ValueError as err:
            raise RecipeError(f"recipe {self.name!r}: {err}") from None

    def to_dict(self) -> dict:
        return {"name": self.name, "optim": dict(self.optim), "source": self.source, "batch": self.batch,
                "steps": self.steps, "notes": list(self.notes)}


# AdamW at constant lr, no EMA: the harness's neutral choice (the same as timing's framework_free.ADAMW).
DEFAULT_RECIPE = Recipe("default", dict(optimizer="adamw", lr=1e-4, weight_decay=0.01, schedule="constant"),
                        "diffbench default (not a paper recipe)")


def find_recipe(entry, preset: str) -> Recipe:
    """The entry's recipe for `preset` (or its "*" recipe)."""
    ref = getattr(entry, "recipes", "")
    if not ref:
        raise RecipeError(f"architecture {entry.name!r} declares no paper recipes; allowed: recipe: default")
    from architectures.registry import resolve

    table = resolve(ref)
    key = preset if preset in table else "*"
    if key not in table:
        raise RecipeError(f"architecture {entry.name!r} has no recipe for preset {preset!r} (recipes for: "
                          f"{sorted(table)}); allowed: recipe: default")
    raw = dict(table[key])
    unknown = set(raw) - {"optim", "batch", "steps", "source", "notes"}
    if unknown or "optim" not in raw or "source" not in raw:
        raise RecipeError(f"{ref}[{key!r}]: a recipe needs 'optim' and 'source' (and may give batch, steps, "
                          f"notes); got {sorted(raw)}")
    return Recipe(f"{key} of {entry.name}", dict(raw["optim"]), raw["source"], raw.get("batch"), raw.get("steps"),
                  tuple(raw.get("notes", ())))
