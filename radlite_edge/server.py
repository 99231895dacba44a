"""``radlite serve``: the assistant over HTTP, safe by default.

Routes (llama-server's shape, so kiosk front ends and OpenAI clients plug in unchanged):
``POST /v1/tasks/{task}`` ({"report", "max_tokens"?, "truncate"?} → the structured answer),
``GET /v1/tasks``, ``GET /v1/models``, ``POST /v1/chat/completions`` (model ``radlite/<task>``,
or a ``[TASK: x]`` tag in the last user message as the published router reads it),
``GET /health``, ``GET /metrics`` (Prometheus text: request counts and latencies) and ``GET /``
(one page: paste a report, pick a task, see the answer).

Safety: the server binds loopback unless given an API key (bearer token, compared with
``hmac.compare_digest``, checked on every route but /health and the page); bodies, reports and
max tokens are bounded; a request names a task, never a file (the routes file, read at start,
is the only place models are named); an error body is a JSON message that never echoes the
key nor a server path, and a failed request leaves the server serving.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass
from importlib import resources
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route as HttpRoute

from .assistant import Assistant, ReportTooLong, RequestTimeout
from .errors import UserError
from .tasks.interface import detect_task
from .tasks.labels import TASK_NAMES

MODEL_PREFIX = "radlite/"
PAGE = "assistant_page.html"
_REQUEST_FIELDS = {"report", "max_tokens", "truncate"}
_CHAT_FIELDS = {"model", "messages", "max_tokens", "temperature", "stream", "n", "user", "truncate"}


@dataclass(frozen=True)
class ServeLimits:
    max_body_bytes: int = 256 * 1024  # a long report is ~20 kB; this leaves room for chat history
    max_report_chars: int = 32_000
    timeout: float = 120.0  # seconds a request may wait and decode


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class HttpError(Exception):
    def __init__(self, status: int, message: str, kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status, self.message, self.kind = status, message, kind


class Metrics:
    """Request counts by route, task and status, and latencies, for /metrics (Prometheus text)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: dict[tuple[str, str, int], int] = {}
        self.latencies: dict[str, list[float]] = {}  # task -> seconds of its answered requests (the last 10,000)
        self.tokens: dict[str, int] = {}

    def record(self, route: str, task: str, status: int, seconds: float, tokens: int = 0) -> None:
        with self._lock:
            key = (route, task, status)
            self.counts[key] = self.counts.get(key, 0) + 1
            if status == 200 and task:
                lat = self.latencies.setdefault(task, [])
                lat.append(seconds)
                del lat[:-10_000]
                self.tokens[task] = self.tokens.get(task, 0) + tokens

    def render(self, loaded: int) -> str:
        import numpy as np

        with self._lock:
            lines = ["# TYPE radlite_requests_total counter"]
            for (route, task, status), n in sorted(self.counts.items()):
                lines.append(f'radlite_requests_total{{route="{route}",task="{task}",status="{status}"}} {n}')
            lines.append("# TYPE radlite_request_seconds summary")
            for task, lat in sorted(self.latencies.items()):
                for q in (0.5, 0.95):
                    lines.append(f'radlite_request_seconds{{task="{task}",quantile="{q}"}} '
                                 f"{float(np.quantile(lat, q)):.6f}")
                lines += [f'radlite_request_seconds_sum{{task="{task}"}} {sum(lat):.6f}',
                          f'radlite_request_seconds_count{{task="{task}"}} {len(lat)}']
            lines.append("# TYPE radlite_generated_tokens_total counter")
            lines += [f'radlite_generated_tokens_total{{task="{t}"}} {n}' for t, n in sorted(self.tokens.items())]
            lines += ["# TYPE radlite_loaded_models gauge", f"radlite_loaded_models {loaded}"]
        return "\n".join(lines) + "\n"


def _error(e: HttpError) -> JSONResponse:
    return JSONResponse({"error": {"message": e.message, "type": e.kind}}, status_code=e.status)


class AssistantServer:
    def __init__(self, assistant: Assistant, *, api_key: str | None = None, limits: ServeLimits = ServeLimits()):
        self.assistant, self.api_key, self.limits = assistant, api_key, limits
        self.metrics = Metrics()
        # every path a message could carry, to be shown by name only (a reply never reveals the server's folders)
        self._paths = sorted({str(p) for r in assistant.routes.routes.values() for p in (r.model, r.adapter) if p}
                             | {str(p.parent) for r in assistant.routes.routes.values() for p in (r.model, r.adapter)
                                if p}, key=len, reverse=True)
        self.app = Starlette(routes=[
            HttpRoute("/", self.page, methods=["GET"]),
            HttpRoute("/health", self.health, methods=["GET"]),
            HttpRoute("/metrics", self.wrap("metrics", self.metrics_text), methods=["GET"]),
            HttpRoute("/v1/tasks", self.wrap("tasks", self.tasks), methods=["GET"]),
            HttpRoute("/v1/models", self.wrap("models", self.models), methods=["GET"]),
            HttpRoute("/v1/tasks/{task}", self.wrap("task", self.task), methods=["POST"]),
            HttpRoute("/v1/chat/completions", self.wrap("chat", self.chat), methods=["POST"]),
        ])

    # ------------------------------------------------------------ plumbing

    def scrub(self, message: str) -> str:
        for p in self._paths:
            message = message.replace(p + "/", "").replace(p, p.rsplit("/", 1)[-1])
        return message

    def check_key(self, request: Request) -> None:
        if self.api_key is None:
            return
        header = request.headers.get("authorization", "")
        given = header[7:].strip() if header[:7].lower() == "bearer " else ""
        # compared in constant time, on bytes: a timing difference must not spell the key out
        if not hmac.compare_digest(given.encode("utf-8"), self.api_key.encode("utf-8")):
            raise HttpError(401, "missing or wrong API key: send the header Authorization: Bearer <key>",
                            "authentication_error")

    def wrap(self, name: str, handler):
        async def endpoint(request: Request) -> Response:
            t0 = time.perf_counter()
            task, tokens = request.path_params.get("task", ""), 0
            try:
                self.check_key(request)
                response, task, tokens = await handler(request)
                status = response.status_code
            except HttpError as e:
                response, status = _error(e), e.status
            except ReportTooLong as e:
                response, status = _error(HttpError(413, self.scrub(str(e)), "report_too_long")), 413
            except RequestTimeout as e:
                response, status = _error(HttpError(504, self.scrub(str(e)), "timeout")), 504
            except UserError as e:
                response, status = _error(HttpError(400, self.scrub(str(e)))), 400
            except Exception:  # a bug: logged by uvicorn's error log, never its text in the reply
                import logging

                logging.getLogger("radlite.serve").exception("request %s failed", name)
                response, status = _error(HttpError(500, "internal error", "server_error")), 500
            self.metrics.record(name, task if task in TASK_NAMES else "", status, time.perf_counter() - t0, tokens)
            return response

        return endpoint

    async def body_json(self, request: Request) -> dict[str, Any]:
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limits.max_body_bytes):
            raise HttpError(413, f"request body over {self.limits.max_body_bytes} bytes")
        data = bytearray()
        async for chunk in request.stream():
            data += chunk
            if len(data) > self.limits.max_body_bytes:
                raise HttpError(413, f"request body over {self.limits.max_body_bytes} bytes")
        if not data.strip():
            raise HttpError(400, "empty request body: send a JSON object")
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            raise HttpError(400, "the request body is not UTF-8") from None
        try:
            body = json.loads(text)
        except json.JSONDecodeError as e:
            raise HttpError(400, f"invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
        if not isinstance(body, dict):
            raise HttpError(400, "the request body must be a JSON object")
        return body

    def check_report(self, report: Any) -> str:
        if not isinstance(report, str) or not report.strip():
            raise HttpError(400, "\"report\" must be a non-empty string")
        if len(report) > self.limits.max_report_chars:
            raise HttpError(413, f"a report of {len(report)} characters: send at most {self.limits.max_report_chars}")
        return report

    def options(self, body: dict, task: str) -> dict[str, Any]:
        limit = self.assistant.routes[task].answer_tokens
        out: dict[str, Any] = {"timeout": self.limits.timeout}
        if body.get("max_tokens") is not None:
            n = body["max_tokens"]
            if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n:
                raise HttpError(400, "\"max_tokens\" must be a positive integer")
            out["max_tokens"] = min(n, limit)  # bounded by the route, as llama-server bounds n_predict
        if body.get("truncate") is not None:
            if not isinstance(body["truncate"], bool):
                raise HttpError(400, "\"truncate\" must be true or false")
            out["truncate"] = body["truncate"]
        return out

    def routed(self, task: str) -> str:
        if task not in self.assistant.routes:
            known = ", ".join(self.assistant.routes.tasks)
            raise HttpError(404, f"unknown task {task[:64]!r}: this server answers {known}")
        return task

    # ------------------------------------------------------------ routes

    async def page(self, request: Request) -> Response:
        return HTMLResponse(resources.files(__package__).joinpath(PAGE).read_text(encoding="utf-8"))

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "tasks": list(self.assistant.routes.tasks),
                             "loaded_models": len(self.assistant.loaded())})

    async def metrics_text(self, request: Request):
        return PlainTextResponse(self.metrics.render(len(self.assistant.loaded())),
                                 media_type="text/plain; version=0.0.4"), "", 0

    async def tasks(self, request: Request):
        data = [{"task": t, "model": r.model.name, "level": r.level,
                 "adapter": None if r.adapter is None else r.adapter.name, "decoding": r.decoding,
                 "max_tokens": r.answer_tokens} for t, r in self.assistant.routes.routes.items()]
        return JSONResponse({"tasks": data}), "", 0

    async def models(self, request: Request):
        data = [{"id": MODEL_PREFIX + t, "object": "model", "owned_by": "radlite"} for t in self.assistant.routes.tasks]
        return JSONResponse({"object": "list", "data": data}), "", 0

    async def task(self, request: Request):
        task = self.routed(request.path_params["task"])
        body = await self.body_json(request)
        extra = set(body) - _REQUEST_FIELDS
        if extra:
            raise HttpError(400, f"unknown field {sorted(extra)[0][:64]!r}: send report, and optionally max_tokens "
                                 "and truncate (models and files are chosen by the server's routes)")
        report = self.check_report(body.get("report"))
        answer = await run_in_threadpool(self.assistant.answer, report, task, **self.options(body, task))
        return JSONResponse(answer.to_dict()), task, answer.tokens

    def chat_task(self, body: dict) -> tuple[str, str]:
        """(task, report) of a chat request: the model names the task, else the last user message's tag."""
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
            raise HttpError(400, "\"messages\" must be a non-empty list of {role, content} objects")
        users = [m for m in messages if m.get("role") == "user"]
        if not users or not isinstance(users[-1].get("content"), str):
            raise HttpError(400, "no user message with text content: put the report in the last user message")
        text = users[-1]["content"]
        model = body.get("model")
        if model is None or model in ("radlite", ""):
            task, report = detect_task(text)  # the published router: tag, else radiology_qa
            return self.routed(task), report
        if not isinstance(model, str):
            raise HttpError(400, "\"model\" must be a string such as radlite/m_staging")
        name = model.removeprefix(MODEL_PREFIX)
        if not model.startswith(MODEL_PREFIX) or not re.fullmatch(r"[a-z_]+", name):
            raise HttpError(400, f"\"model\" names a task as {MODEL_PREFIX}<task> (or radlite, to route by the "
                                 "[TASK: x] tag); files and paths are not accepted")
        task, report = detect_task(text)
        return self.routed(name), report if task == name else text

    async def chat(self, request: Request):
        body = await self.body_json(request)
        extra = set(body) - _CHAT_FIELDS
        if extra:
            raise HttpError(400, f"unknown field {sorted(extra)[0][:64]!r} for /v1/chat/completions")
        if body.get("stream"):
            raise HttpError(400, "\"stream\": streaming is not offered; the answers are short")
        if body.get("n") not in (None, 1):
            raise HttpError(400, "\"n\": one answer per request")
        task, report = self.chat_task(body)
        report = self.check_report(report)
        answer = await run_in_threadpool(self.assistant.answer, report, task, **self.options(body, task))
        finish = "length" if answer.tokens >= self.assistant.routes[task].answer_tokens else "stop"
        reply = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion", "created": int(time.time()),
            "model": MODEL_PREFIX + task,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer.text},
                         "finish_reason": finish}],
            "usage": {"prompt_tokens": answer.prompt_tokens, "completion_tokens": answer.tokens,
                      "total_tokens": answer.prompt_tokens + answer.tokens},
            "radlite": answer.to_dict(),
        }
        return JSONResponse(reply), task, answer.tokens


def serve(assistant: Assistant, *, host: str, port: int, api_key: str | None, limits: ServeLimits = ServeLimits(),
          announce=print) -> None:
    """Run the server until interrupted; a non-loopback address without an API key is refused."""
    import uvicorn

    if not is_loopback(host) and api_key is None:
        raise UserError(f"--host {host} opens the assistant beyond this machine: give --api-key-file (a bearer "
                        "token clients must send), or bind 127.0.0.1")
    server = AssistantServer(assistant, api_key=api_key, limits=limits)
    shown = f"[{host}]" if ":" in host else host
    announce(f"radlite serve: http://{shown}:{port}/ ({len(assistant.routes.tasks)} tasks from "
             f"{assistant.routes.source}); " + ("API key required (Authorization: Bearer)" if api_key
                                                 else "no API key: loopback only"))
    uvicorn.run(server.app, host=host, port=port, log_level="warning", server_header=False,
                limit_concurrency=64, timeout_keep_alive=5)
