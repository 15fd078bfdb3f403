"""The candidates: a trivial model, a linear baseline and LightGBM, and their search spaces."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from conveyor.stages.training._encoder import FeatureEncoder
from conveyor.stages.training._target import LogTarget  # its own module: the logged model copies it

if TYPE_CHECKING:
    import numpy as np
    import optuna

__all__ = [
    "LIGHTGBM_MAX_ROUNDS", "MANY_LEVELS", "REGULARISED", "LogTarget", "early_stopping_metric", "fit", "lightgbm_space", "linear_space",
    "make_lightgbm", "make_linear", "make_trivial", "skewed_target", "untuned_lightgbm",
]

LIGHTGBM_MAX_ROUNDS = 3000
"""Upper bound on boosting rounds; early stopping (each fold's, the final fit's inner split) picks fewer."""
Params = dict[str, Any]
MANY_LEVELS = 30
"""A categorical with more levels than this is target-encoded for the linear baseline, not one-hot."""
SKEW = 0.75
"""A non-negative regression target with a larger skewness gets the log transform tried (`skewed_target`)."""


def skewed_target(y: np.ndarray) -> bool:
    """A non-negative target with a long right tail (prices, counts, durations): log1p is worth trying."""
    import numpy as np

    if len(y) < 3 or float(np.min(y)) < 0:
        return False
    centred = y - y.mean()
    spread = float(np.sqrt(np.mean(centred**2)))
    return spread > 0 and float(np.mean(centred**3)) / spread**3 > SKEW


def make_trivial(task: str) -> Any:
    """What a model must beat to be worth serving: the training mean, or the class prior."""
    from sklearn.dummy import DummyClassifier, DummyRegressor

    return DummyRegressor(strategy="mean") if task == "regression" else DummyClassifier(strategy="prior")


def make_linear(task: str, encoder: FeatureEncoder, params: Params, seed: int) -> Any:
    """A linear model on median-imputed, scaled numerics and categoricals: one-hot for a few levels;
    target-encoded (cross-fitted, scaled) for many, where one-hot spreads rare levels over more
    columns than the rows can fit."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler, TargetEncoder

    numeric = list(range(len(encoder.numeric)))
    levels = getattr(encoder, "codes_", {})
    few = [i for i, name in zip(encoder.categorical_indices, encoder.categorical, strict=True)
           if len(levels.get(name, ())) <= MANY_LEVELS]
    many = [i for i in encoder.categorical_indices if i not in few]
    parts: list[tuple[str, Any, list[int]]] = [
        ("numeric", make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler()), numeric),
        (
            "categorical",
            make_pipeline(
                SimpleImputer(strategy="constant", fill_value=-1),
                OneHotEncoder(handle_unknown="ignore", min_frequency=5),
            ),
            few,
        ),
    ]
    if many:
        from sklearn.model_selection import KFold, StratifiedKFold

        regression = task == "regression"
        folds = (KFold if regression else StratifiedKFold)(n_splits=5, shuffle=True, random_state=seed)
        parts.append(("many_levels", make_pipeline(
            SimpleImputer(strategy="constant", fill_value=-1),
            TargetEncoder(target_type="continuous" if regression else "auto", cv=folds), StandardScaler()), many))
    prep = ColumnTransformer(parts)
    if task == "regression":
        model = make_pipeline(prep, Ridge(alpha=float(params.get("alpha", 1.0))))
        return LogTarget(model) if params.get("target") == "log" else model
    return make_pipeline(
        prep,
        LogisticRegression(
            C=float(params.get("C", 1.0)), class_weight=params.get("class_weight"), max_iter=2000, random_state=seed
        ),
    )


def linear_space(trial: optuna.Trial, task: str, imbalanced: bool, skewed: bool = False) -> Params:
    params: Params
    if task == "regression":
        params = {"alpha": trial.suggest_float("alpha", 1e-3, 1e3, log=True)}
        if skewed:
            params["target"] = trial.suggest_categorical("target", ["none", "log"])
        return params
    params = {"C": trial.suggest_float("C", 1e-3, 1e2, log=True)}
    if imbalanced:
        params["class_weight"] = trial.suggest_categorical("class_weight", [None, "balanced"])
    return params


def untuned_lightgbm(defaults: dict[str, Any]) -> Params:
    """`training.lightgbm` as search parameters: the search's first trial."""
    return {
        "learning_rate": defaults["learning_rate"],
        "num_leaves": defaults["num_leaves"],
        "min_child_samples": defaults["min_child_samples"],
        "subsample": defaults["subsample"],
        "colsample_bytree": defaults["colsample_bytree"],
        "reg_lambda": 1e-3,
    }


REGULARISED: Params = {
    "learning_rate": 0.03, "num_leaves": 15, "min_child_samples": 100, "subsample": 0.8, "colsample_bytree": 0.5,
    "reg_lambda": 5.0,
}
"""The search's second trial: a conservative starting point for noisy tabular data (on the credit-default
data, with early-stopped rounds, ROC AUC 0.7810-0.8024 on three splits against 0.7765-0.8010 for the
untuned parameters); kept (like the untuned first trial) unless the best trial beats it by one standard
error on CV."""


def lightgbm_space(trial: optuna.Trial, imbalanced: bool, skewed: bool = False, untuned: Params | None = None) -> Params:
    """The searched LightGBM parameters; each range stretched to hold `untuned` (the first trial, from
    `training.lightgbm`), so a setting outside the usual range is searched around, not refused."""
    def span(name: str, low: float, high: float) -> tuple[Any, Any]:
        value = (untuned or {}).get(name)
        if value is None:
            return low, high
        return min(low, value), max(high, value)

    params: Params = {
        # centred on what won on the bike, credit and taxi data (rate 0.03, 15-31 leaves, 20-100 rows a
        # leaf, half to all of the features): a rate below 0.02 needs thousands of rounds, over 128
        # leaves or under 8 rarely pays on tabular data, and both ends cost most of the search's time
        "learning_rate": trial.suggest_float("learning_rate", *span("learning_rate", 0.02, 0.15), log=True),
        "num_leaves": trial.suggest_int("num_leaves", *span("num_leaves", 8, 128), log=True),
        "min_child_samples": trial.suggest_int("min_child_samples", *span("min_child_samples", 10, 200), log=True),
        "subsample": trial.suggest_float("subsample", *span("subsample", 0.6, 1.0)),
        "colsample_bytree": trial.suggest_float("colsample_bytree", *span("colsample_bytree", 0.4, 1.0)),
        "reg_lambda": trial.suggest_float("reg_lambda", *span("reg_lambda", 1e-3, 10.0), log=True),
    }
    if imbalanced:
        params["class_weight"] = trial.suggest_categorical("class_weight", [None, "balanced"])
    if skewed:
        params["target"] = trial.suggest_categorical("target", ["none", "log"])
    return params


def early_stopping_metric(metric: str, n_classes: int) -> str:
    """LightGBM's evaluation metric for early stopping on a fold: the primary metric, or its closest kin."""
    if metric in ("r2", "rmse", "rmsle"):
        return "l2"
    if metric == "mae":
        return "l1"
    if n_classes == 2 and metric == "roc_auc":
        return "auc"
    if n_classes == 2 and metric == "pr_auc":
        return "average_precision"
    return "binary_logloss" if n_classes == 2 else "multi_logloss"


def make_lightgbm(task: str, params: Params, *, seed: int, threads: int) -> Any:
    import lightgbm as lgb

    target = params.get("target", "none")
    settings: Params = {
        "n_estimators": LIGHTGBM_MAX_ROUNDS,
        **{k: v for k, v in params.items() if k != "target"},
        "random_state": seed,
        "n_jobs": threads,  # always explicit: LightGBM's default spins on a busy machine
        "verbose": -1,
        # the same data, seed and threads give the same model, so the gate compares like with like
        "deterministic": True,
        "force_col_wise": True,
    }
    if settings.get("subsample", 1.0) < 1:
        settings["subsample_freq"] = 1
    if task == "regression":
        regressor = lgb.LGBMRegressor(**settings)
        return LogTarget(regressor) if target == "log" else regressor
    return lgb.LGBMClassifier(**settings)


def fit(
    estimator: Any,
    matrix: np.ndarray,
    y: np.ndarray,
    encoder: FeatureEncoder,
    valid: tuple[np.ndarray, np.ndarray] | None = None,
    stop_at: float | None = None,
    *,
    keep_at_deadline: bool = False,
) -> Any:
    """Fit; a LightGBM model given `valid` stops early when that set stops improving, and one given
    `stop_at` (a `time.perf_counter()` reading) raises `OverBudget` at the first round past it, or,
    with `keep_at_deadline`, ends there as a fitted model of the rounds it reached."""
    inner = estimator.regressor if isinstance(estimator, LogTarget) else estimator
    if type(inner).__module__.startswith("lightgbm"):
        import lightgbm as lgb
        import numpy as np

        if isinstance(inner, lgb.LGBMClassifier):
            # a time-ordered fold may hold fewer classes than the target has (a class that appears
            # later): LightGBM picks its objective from the classes it is given, so the watched
            # metric follows it, else "Multiclass objective and metrics don't match"
            metric = inner.get_params().get("metric")
            binary = len(np.unique(y)) <= 2
            if binary and metric == "multi_logloss":
                inner.set_params(metric="binary_logloss")
            elif not binary and metric in ("binary_logloss", "auc", "average_precision"):
                inner.set_params(metric="multi_logloss")
        extra: Params = {}
        callbacks: list[Any] = []
        if valid is not None:
            extra = {"eval_X": (valid[0],), "eval_y": (valid[1],)}
            callbacks.append(lgb.early_stopping(50, verbose=False))
        if stop_at is not None:
            callbacks.append(_stop_at(stop_at, keep=keep_at_deadline))
        if callbacks:
            extra["callbacks"] = callbacks
        return estimator.fit(matrix, y, categorical_feature=encoder.categorical_indices or "auto", **extra)
    return estimator.fit(matrix, y)


class OverBudget(Exception):
    """A fit given `stop_at` ran past it (a search trial when the search's budget is spent)."""


def _stop_at(deadline: float, *, keep: bool = False) -> Callable[[Any], None]:
    """A LightGBM callback: after each round, once the clock passes `deadline`, `OverBudget`, or
    with `keep` the end of the fit at that round (as early stopping ends one)."""
    import time

    import lightgbm as lgb

    def check(env: Any) -> None:
        if time.perf_counter() > deadline:
            if keep:
                raise lgb.callback.EarlyStopException(env.iteration, env.evaluation_result_list or [])
            raise OverBudget(f"stopped at round {env.iteration + 1}: the search's budget is spent")

    check.order = 40  # type: ignore[attr-defined]  # after early stopping (30): a converged fit ends normally
    return check
