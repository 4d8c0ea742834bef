"""The ``recommend.py`` and ``serve.py`` entries."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from recsys.serving.recommender import QUERY_TEXT_WEIGHT, Recommendation, Recommender


def recommender_from_config(cfg: DictConfig) -> Recommender:
    return Recommender.from_export(cfg.export, index=hydra.utils.instantiate(cfg.index), rerank_top=cfg.rerank_top,
                                   order=cfg.order, text_backend=cfg.get("text_backend", "auto"),
                                   query_text_weight=cfg.get("query_text_weight", QUERY_TEXT_WEIGHT))


def render(recommendations: list[Recommendation], title: str) -> Table:
    table = Table(title=title, show_lines=False)
    for column, justify in (("rank", "right"), ("item", "left"), ("score", "right"), ("cosine", "right"),
                            ("stars", "right"), ("explanation", "left")):
        table.add_column(column, justify=justify)
    for r in recommendations:
        table.add_row(str(r.rank), f"{r.item_id}\n{r.snippet[:60]}", f"{r.score:.3f}", f"{r.cosine:.3f}",
                      f"{r.predicted_rating:.2f}", r.explanation)
    return table


def recommend(cfg: DictConfig) -> list[Recommendation]:
    """Print a table of recommendations for ``cfg.user`` or ``cfg.query``."""
    if (cfg.user is None) == (cfg.query is None):
        raise ValueError("give exactly one of user=ID or query=\"text\"")
    recommender = recommender_from_config(cfg)
    if cfg.user is not None:
        answer = recommender.recommend_user(str(cfg.user), cfg.k, cfg.exclude_seen)
        title = f"Top {cfg.k} for user {cfg.user}"
    else:
        answer = recommender.recommend_query(str(cfg.query), cfg.k)
        title = f"Top {cfg.k} for \"{cfg.query}\""
    Console(width=160).print(render(answer, title))
    return answer


def serve(cfg: DictConfig) -> None:
    """Run the HTTP app with uvicorn on ``cfg.host:cfg.port``."""
    import uvicorn

    from recsys.serving.http import create_app

    uvicorn.run(create_app(recommender_from_config(cfg)), host=cfg.host, port=int(cfg.port), log_level="info",
                access_log=bool(cfg.get("access_log", True)))
