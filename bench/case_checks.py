"""A case's `train:` and `quality:` settings against its model, checked at suite load so that a
setting that cannot work stops `diffbench plan` instead of failing the case minutes into a run:
the datasets give what the model takes (images or clips, channels, resolution, classes, enough
examples), the metrics suit its outputs, and the weights files those metrics need are named.

Imports neither torch nor jax (the dataset cards and the config's `input_shapes` only).
"""

from __future__ import annotations

import os

from bench.data.suite_checks import check_count, check_model
from bench.overrides import apply_overrides, dotted
from bench.quality.settings import METRICS, WEIGHTS_ENV, QualitySettings
from bench.strict_yaml import SpecError, child
from bench.training.stage_spec import nest_problem

FVD_FRAMES = 16  # the I3D reads 16 frames (bench.quality.features.FVD_FRAMES; that module imports torch)


def check_point(entry, preset: str, overrides, train, fields: dict, chosen: dict, source: str,
                override_path: str) -> None:
    """One grid point of a suite (bench.suite_file): its settings `fields`, each chosen with its key path
    (`chosen[key] = (value, path)`); a SpecError at the path of the setting that cannot work."""
    if "train" not in fields["measure"] and "quality" not in fields["measure"]:
        return
    config = entry.load_presets()[preset].config
    config = apply_overrides(config, overrides, source, dotted(override_path))[0]
    problem = check(train, fields["quality"], fields["measure"], config)
    if problem is None:
        return
    setting, key, text, allowed = problem
    keys = key if isinstance(key, tuple) else (key,)
    if fields[setting] is None:  # the default settings: say so where measure asks for them
        raise SpecError(source, chosen["measure"][1], f"{setting}.{keys[0]} (the default): {text}", allowed)
    where = chosen[setting][1]
    for k in keys:
        where = child(where, k)
    raise SpecError(source, where, text, allowed)


def check(train, quality, measure, config):
    """The first problem as (setting, key, problem, allowed), setting 'train' or 'quality', key a
    key of that mapping or a (key, index) pair; or None."""
    try:
        shapes = config.input_shapes(1)
        first = shapes["x"][0]  # (shape, dtype), or a multi-resolution model's [(shape, dtype), ...]
        x_shape = tuple(first[0]) if isinstance(first[0], (tuple, list)) else tuple(first)  # its highest side
        context = shapes["context"][0][1] if "context" in shapes and "context_mask" not in shapes else 0  # frames
    except Exception:  # a config without the usual input_shapes: its own checks report it
        return None
    if "train" in measure and train is not None:
        problem = check_model(train["dataset"], x_shape, getattr(config, "num_classes", 0) or 0) or \
            nest_problem(train, config)
        if problem:
            return ("train", *problem)
    if "quality" in measure:
        problem = _quality(quality or QualitySettings(), x_shape, context)
        if problem:
            return ("quality", *problem)
    return None


def _quality(q: QualitySettings, x_shape: tuple, context: int):
    problem = check_model(q.dataset, x_shape)
    if problem:
        return problem
    video = len(x_shape) == 5
    fitting = [m for m, spaces in METRICS.items() if spaces[1 if video else 0] is not None]
    for i, name in enumerate(q.metrics):
        if name not in fitting:
            return ("metrics", i), f"metric {name!r} does not score {'videos' if video else 'images'}", fitting
    frames = x_shape[1] + context if video else 0
    if "fvd" in q.metrics and frames < FVD_FRAMES:
        return "metrics", f"fvd reads {FVD_FRAMES} frames and the model's clips have {frames}", \
            [m for m in fitting if m != "fvd"]
    if x_shape[-3] != x_shape[-2]:
        return "dataset", f"quality needs square samples; the model makes {x_shape[-3]}x{x_shape[-2]}", \
            "models of square resolution"
    if context:
        problem = check_count(q.dataset, "n", q.n, 3, "n compared + n for the floor + n conditioning clips")
        if problem:
            return problem
    for name in q.metrics:
        env = WEIGHTS_ENV.get(name)
        path = os.environ.get(env, "") if env else None
        if env and not os.path.isfile(path):
            state = f"{env}={path!r} is not a file" if path else f"{env} is not set"
            return "metrics", f"metric {name!r} needs its weights file: {state}", \
                f"{env} naming the file (docs/quality.md), or the offline metrics fd-effnet, kid"
    return None
