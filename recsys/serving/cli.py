"""The ``recommend.py`` and ``serve.py`` entries."""

from __future__ import annotations

import ipaddress
import json
import logging
import time
from pathlib import Path

import hydra
from omegaconf import DictConfig
from rich.console import Console, JustifyMethod
from rich.table import Table

from recsys.serving.batch import SUFFIXES, output_suffix, users_to_recommend, write_recommendations
from recsys.serving.recommender import QUERY_TEXT_WEIGHT, Recommendation, Recommender
from recsys.settings import checked_choice, checked_whole_number, flag_setting, whole_number_setting

log = logging.getLogger(__name__)
MAX_PORT = 65_535  # TCP's
OUTPUTS = ("table", "json")


def recommender_from_config(cfg: DictConfig) -> Recommender:
    """The :class:`Recommender` of ``cfg.export`` with the serving settings of ``cfg`` (which it checks)."""
    return Recommender.from_export(cfg.export, index=hydra.utils.instantiate(cfg.index), rerank_top=cfg.rerank_top,
                                   order=cfg.order, text_backend=cfg.get("text_backend", "auto"),
                                   query_text_weight=cfg.get("query_text_weight", QUERY_TEXT_WEIGHT))


def render(recommendations: list[Recommendation], title: str, rating: str = "stars") -> Table:
    """A Rich table of the recommendations: rank, item and snippet, score, cosine, predicted
    rating (its column named ``rating``), explanation."""
    table = Table(title=title, show_lines=False)
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("rank", "right"), ("item", "left"), ("score", "right"), ("cosine", "right"), (rating, "right"),
        ("explanation", "left"),
    )
    for column, justify in columns:
        table.add_column(column, justify=justify)
    for r in recommendations:
        table.add_row(str(r.rank), f"{r.item_id}\n{r.snippet[:60]}", f"{r.score:.3f}", f"{r.cosine:.3f}",
                      f"{r.predicted_rating:.2f}", r.explanation)
    return table


def recommend(cfg: DictConfig) -> list[Recommendation]:
    """Print the recommendations for ``cfg.user`` or ``cfg.query``: a table, or with
    ``output=json`` one JSON object (what ``POST /recommend`` answers), for other programs. With
    ``cfg.users`` (``all`` or a file of ids), write theirs to the file ``cfg.out`` instead
    (:func:`recommend_to_file`; nothing is returned)."""
    asked = [key for key in ("user", "query", "users") if cfg.get(key) is not None]
    if len(asked) != 1:
        raise ValueError("give exactly one of user=ID, query=\"text\" or users=all|FILE (the file of ids: one a "
                         f"line) with out=FILE; got {', '.join(asked) or 'none'}")
    whole_number_setting(cfg, "k", least=1, example=10, required=True)
    flag_setting(cfg, "exclude_seen")
    flag_setting(cfg, "overwrite")
    if asked == ["users"]:
        recommend_to_file(cfg)
        return []
    if cfg.get("out") is not None:
        raise ValueError(f"out={cfg.out} is where users=all|FILE writes its recommendations; for one user or "
                         "query they are printed (output=table or json)")
    output = checked_choice("output", cfg.get("output", "table"), OUTPUTS)
    recommender = recommender_from_config(cfg)
    if cfg.user is not None:
        answer = recommender.recommend_user(str(cfg.user), cfg.k, cfg.exclude_seen)
        title = f"Top {cfg.k} for user {cfg.user}"
    else:
        answer = recommender.recommend_query(str(cfg.query), cfg.k)
        title = f"Top {cfg.k} for \"{cfg.query}\""
    if output == "json":
        print(json.dumps({"items": [r.to_dict() for r in answer]}))  # ASCII: safe in any terminal encoding
        return answer
    scale = recommender.rating_scale
    Console(width=160).print(render(answer, title, "stars" if scale.is_stars else f"rating {scale}"))
    return answer


def recommend_to_file(cfg: DictConfig) -> int:
    """Write the top ``cfg.k`` of each user that ``cfg.users`` names (``all``, or a file of ids) to
    ``cfg.out`` (:func:`recsys.serving.batch.write_recommendations`), say where and how fast, and
    return the number of rows. The settings are checked before the export is loaded."""
    if cfg.get("out") is None:
        formats = f"{', '.join(SUFFIXES[:-1])} or {SUFFIXES[-1]}"
        raise ValueError(f"users={cfg.users} writes a file: add out=recommendations.parquet ({formats})")
    output_suffix(cfg.out)
    if Path(cfg.out).exists() and not cfg.overwrite:
        raise FileExistsError(f"out={cfg.out} exists; add overwrite=true to replace it")
    recommender = recommender_from_config(cfg)
    users = users_to_recommend(recommender, cfg.users)
    started = time.perf_counter()
    rows = write_recommendations(recommender, users, cfg.out, cfg.k, cfg.exclude_seen)
    seconds = time.perf_counter() - started
    whom = f"{len(users):,} users" if len(users) != 1 else "1 user"
    print(f"Wrote {rows:,} recommendations (top {cfg.k} of {whom}) to {cfg.out} in {seconds:.1f} s "
          f"({len(users) / max(seconds, 1e-9):,.0f} users/s)")
    return rows


def exposure_warning(host: str) -> str | None:
    """What to tell the operator of a server bound beyond this machine (``host`` not a loopback
    address): it answers anyone who reaches it, and its answers quote users' reviews."""
    try:
        if host == "localhost" or ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:
        pass  # a host name: other machines may reach it
    return (f"host={host}: this server answers anyone who can reach it, without authentication, and its "
            "answers for a known user quote that user's reviews; put it behind an authenticating proxy, "
            "or keep host=127.0.0.1")


def serve(cfg: DictConfig) -> None:
    """Run the HTTP app with uvicorn on ``cfg.host:cfg.port``."""
    import uvicorn

    from recsys.serving.http import create_app

    port = checked_whole_number("port", cfg.get("port"), least=0, most=MAX_PORT, note="(0: any free port; e.g. 8000)")
    access_log = flag_setting(cfg, "access_log") if "access_log" in cfg else True
    warning = exposure_warning(str(cfg.host))
    if warning:
        log.warning(warning)
    uvicorn.run(create_app(recommender_from_config(cfg)), host=cfg.host, port=port, log_level="info",
                access_log=access_log)
