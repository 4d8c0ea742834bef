"""Load-test the HTTP API: a seeded mix of valid and invalid requests from concurrent clients.

Used by ``scripts/load_test_http.py`` and by the test suite: start the real server on loopback
(:class:`ServerProcess`), send :func:`request_mix` with :func:`run_load`, and check the
:class:`LoadResult` (no 5xx, every invalid request a 4xx, memory flat).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import numpy as np

SERVE_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "serve.py"
WORDS = ("guitar", "strings", "bright", "tuner", "cable", "warm", "pedal", "cheap", "sturdy", "magazine",
         "recipes", "travel", "news", "kids", "loud", "quiet", "stand", "capo", "picks", "amp")


@dataclass(frozen=True)
class LoadRequest:
    """One request; ``valid`` requests must get 200, the others a 4xx."""

    kind: str
    method: str
    path: str
    body: bytes | None
    valid: bool


def _json(obj: object) -> bytes:
    return json.dumps(obj).encode()


def request_mix(user_ids: list[str], item_ids: list[str], count: int, seed: int = 0,
                invalid_share: float = 0.3, rating_scale: Sequence[float] = (1.0, 5.0)) -> list[LoadRequest]:
    """``count`` requests, ``invalid_share`` of them invalid, kinds drawn at random (seeded); the
    reviews' ratings are whole numbers on the export's ``rating_scale``, the invalid one above it."""
    rng = np.random.default_rng(seed)
    lowest, highest = math.ceil(rating_scale[0]), math.floor(rating_scale[1])

    def words(n: int) -> str:
        return " ".join(rng.choice(WORDS, size=n))

    def user() -> str:
        return str(user_ids[rng.integers(len(user_ids))])

    def item() -> str:
        return str(item_ids[rng.integers(len(item_ids))])

    valid = {
        "user": lambda: ("POST", "/recommend", _json({"user_id": user(), "k": int(rng.integers(1, 51))})),
        "query": lambda: ("POST", "/recommend", _json({"query": words(int(rng.integers(1, 12))), "k": 10})),
        "reviews": lambda: ("POST", "/recommend", _json({
            "reviews": [{"text": words(20), "item_id": item(), "rating": float(rng.integers(lowest, highest + 1))}
                        for _ in range(int(rng.integers(1, 4)))], "k": 10})),
        "item": lambda: ("GET", f"/items/{quote(item(), safe='')}", None),  # any id of one's own data
        "health": lambda: ("GET", "/health", None),
    }
    invalid = {
        "unknown_user": lambda: ("POST", "/recommend", _json({"user_id": "no-such-user-" + words(1), "k": 5})),
        "unknown_item": lambda: ("GET", "/items/no-such-item", None),
        "unknown_review_item": lambda: ("POST", "/recommend", _json({"reviews": [{"text": "ok", "item_id": "zz"}]})),
        "k_zero": lambda: ("POST", "/recommend", _json({"user_id": user(), "k": 0})),
        "k_huge": lambda: ("POST", "/recommend", _json({"user_id": user(), "k": 10**9})),
        "k_string": lambda: ("POST", "/recommend", _json({"user_id": user(), "k": "ten"})),
        "two_ways": lambda: ("POST", "/recommend", _json({"user_id": user(), "query": "guitar"})),
        "no_way": lambda: ("POST", "/recommend", _json({"k": 5})),
        "extra_field": lambda: ("POST", "/recommend", _json({"query": "guitar", "admin": True})),
        "rating_off_scale": lambda: ("POST", "/recommend", _json({"reviews": [{"text": "fine",
                                                                               "rating": rating_scale[1] + 2}]})),
        "text_too_long": lambda: ("POST", "/recommend", _json({"query": "a" * 20_000})),
        "empty_body": lambda: ("POST", "/recommend", b""),
        "malformed_json": lambda: ("POST", "/recommend", b'{"user_id": '),
        "not_utf8": lambda: ("POST", "/recommend", b'{"query": "caf\xe9"}'),
        "json_array": lambda: ("POST", "/recommend", b"[1, 2, 3]"),
        "unknown_path": lambda: ("GET", "/admin", None),
        "wrong_method": lambda: ("DELETE", "/recommend", None),
    }
    requests = []
    for _ in range(count):
        is_valid = rng.random() >= invalid_share
        kinds = valid if is_valid else invalid
        kind = list(kinds)[rng.integers(len(kinds))]
        method, path, body = kinds[kind]()
        requests.append(LoadRequest(kind, method, path, body, is_valid))
    return requests


@dataclass
class LoadResult:
    """Status and latency of each request (status 0: no HTTP answer), and the wall time."""

    requests: list[LoadRequest]
    statuses: np.ndarray
    latencies_ms: np.ndarray
    seconds: float

    def valid(self) -> np.ndarray:
        """[n] bool: which requests are well-formed (should get 200)."""
        return np.array([r.valid for r in self.requests], dtype=bool)

    def wrong_answers(self) -> np.ndarray:
        """[n] bool: valid requests not answered 200, invalid ones not answered 4xx."""
        client_error = (self.statuses >= 400) & (self.statuses < 500)
        return np.where(self.valid(), self.statuses != 200, ~client_error)

    def summary(self) -> dict[str, float]:
        """The load table's row: throughput, latency percentiles over answered requests, and wrong answers."""
        valid, wrong = self.valid(), self.wrong_answers()
        sent = int(np.isfinite(self.latencies_ms).sum())
        return {
            "requests": len(self.requests),
            "sent": sent,
            "requests_per_s": sent / self.seconds,
            "p50_ms": float(np.nanpercentile(self.latencies_ms, 50)),
            "p99_ms": float(np.nanpercentile(self.latencies_ms, 99)),
            "server_errors": int((self.statuses >= 500).sum()),
            "no_answer": int((self.statuses == 0).sum()),
            "valid_not_200": int((wrong & valid).sum()),
            "invalid_not_4xx": int((wrong & ~valid).sum()),
        }

    def failures(self, limit: int = 5) -> list[str]:
        """A few requests that did not get the answer they should have, for error messages."""
        return [f"{self.requests[i].kind} {self.requests[i].method} {self.requests[i].path} -> {self.statuses[i]}"
                for i in np.flatnonzero(self.wrong_answers())[:limit]]


def run_load(url: str, requests: list[LoadRequest], clients: int = 8, timeout_s: float = 30.0,
             deadline_s: float = 600.0) -> LoadResult:
    """Send ``requests`` to ``url`` from ``clients`` concurrent connections; stop at ``deadline_s``."""
    return asyncio.run(_run_load(url, requests, clients, timeout_s, deadline_s))


async def _run_load(url: str, requests: list[LoadRequest], clients: int, timeout_s: float,
                    deadline_s: float) -> LoadResult:
    import httpx

    statuses = np.zeros(len(requests), dtype=np.int32)
    latencies = np.full(len(requests), np.nan)
    next_index = iter(range(len(requests)))
    headers = {"content-type": "application/json"}
    started = time.perf_counter()

    async def client(http: httpx.AsyncClient) -> None:
        for i in next_index:
            if time.perf_counter() - started > deadline_s:
                return
            request = requests[i]
            sent = time.perf_counter()
            try:
                response = await http.request(request.method, url + request.path, content=request.body,
                                              headers=headers if request.body is not None else None)
                statuses[i] = response.status_code
            except httpx.HTTPError:
                statuses[i] = 0
            latencies[i] = (time.perf_counter() - sent) * 1000

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=timeout_s, limits=limits) as http:
        await asyncio.gather(*(client(http) for _ in range(clients)))
    seconds = time.perf_counter() - started
    done = ~np.isnan(latencies)
    return LoadResult([r for r, d in zip(requests, done, strict=True) if d], statuses[done], latencies[done], seconds)


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """``scripts/serve.py`` on loopback in a child process (its log in ``log_path``); a context manager."""

    def __init__(self, export: Path | str, log_path: Path | str, port: int | None = None,
                 overrides: tuple[str, ...] = ()) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.command = [sys.executable, str(SERVE_SCRIPT), f"export={export}", f"port={self.port}",
                        "access_log=false", *overrides]
        self.log_path = Path(log_path)
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> ServerProcess:
        import httpx

        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "wb")  # noqa: SIM115 (the child writes to it until stopped)
        self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT,
                                        env={**os.environ, "HF_HUB_OFFLINE": "1"})
        log.close()
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}: {self.log_path.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.3)
        self.__exit__(None, None, None)
        raise TimeoutError(f"server did not answer /health in 180 s; log: {self.log_path}")

    def rss_mb(self) -> float:
        """The server's resident memory."""
        import psutil

        if self.process is None:
            raise RuntimeError("the server is not running: start it with `with ServerProcess(...)`")
        return psutil.Process(self.process.pid).memory_info().rss / 2**20

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
