"""`radlite serve` over real HTTP on loopback, and `radlite run`, on tiny models."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

pytest.importorskip("uvicorn")

import uvicorn  # noqa: E402

from radlite_edge.assistant import Assistant  # noqa: E402
from radlite_edge.cli import main  # noqa: E402
from radlite_edge.convert.lora_gguf import export_lora  # noqa: E402
from radlite_edge.errors import UserError  # noqa: E402
from radlite_edge.routes import Route, Routes, save_routes  # noqa: E402
from radlite_edge.server import AssistantServer, ServeLimits, serve  # noqa: E402
from radlite_edge.synth.adapters import write_adapter  # noqa: E402
from radlite_edge.synth.models import SPECS, vocab_size_of  # noqa: E402

KEY = "test-key-0123456789abcdef"
REPORTS = ["CT chest: 3.2 cm spiculated mass in the right upper lobe. No pleural effusion.",
           "Multiple hypodense liver lesions consistent with metastatic disease.",
           "Premise: Small left effusion. Hypothesis: There is a pleural effusion."]


@pytest.fixture(scope="module")
def routes(tiny_checkpoint, tiny_gguf, tmp_path_factory) -> Routes:
    folder = tmp_path_factory.mktemp("serve")
    spec = SPECS["tiny-qwen2"]
    adapter = write_adapter(spec, vocab_size_of(spec), folder / "adapter", rank=8, alpha=512, seed=5)
    lora = export_lora(adapter, tiny_checkpoint("tiny-qwen2"), folder / "ner.gguf", outtype="f32").path
    base, other = tiny_gguf("tiny-qwen2", "f32"), tiny_gguf("tiny-qwen3", "f32")
    return Routes({
        "radiology_ner": Route("radiology_ner", base, adapter=lora, decoding="strict", max_tokens=10),
        "m_staging": Route("m_staging", base),
        "radiology_nli": Route("radiology_nli", other),
        "impression_generation": Route("impression_generation", other, decoding="strict", max_tokens=10),
    }, source="test routes")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Live:
    """A server in a thread of this process, on a loopback port."""

    def __init__(self, routes: Routes, api_key: str | None = None) -> None:
        self.assistant = Assistant(routes, n_threads=1)
        self.app = AssistantServer(self.assistant, api_key=api_key,
                                   limits=ServeLimits(max_body_bytes=4096, max_report_chars=1000, timeout=60))
        self.port = _free_port()
        self.server = uvicorn.Server(uvicorn.Config(self.app.app, host="127.0.0.1", port=self.port,
                                                    log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.time() + 20
        while not self.server.started:
            assert time.time() < deadline, "the server did not start"
            time.sleep(0.05)

    def call(self, method: str, path: str, body=None, headers: dict | None = None) -> tuple[int, object]:
        data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data, method=method,
                                         headers={"Content-Type": "application/json", **(headers or {})})
        try:
            with urllib.request.urlopen(request, timeout=60) as r:
                status, raw, kind = r.status, r.read(), r.headers.get("content-type", "")
        except urllib.error.HTTPError as e:
            status, raw, kind = e.code, e.read(), e.headers.get("content-type", "")
        return status, json.loads(raw) if "json" in kind else raw.decode()

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.assistant.close()


@pytest.fixture(scope="module")
def live(routes):
    server = Live(routes)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def alone(routes):
    with Assistant(routes, n_threads=1) as assistant:
        yield lambda report, task: assistant.answer(report, task).to_dict()


def test_every_endpoint(live, alone):
    status, health = live.call("GET", "/health")
    assert status == 200 and health["status"] == "ok" and set(health["tasks"]) == set(live.assistant.routes.tasks)
    status, tasks = live.call("GET", "/v1/tasks")
    ner = next(t for t in tasks["tasks"] if t["task"] == "radiology_ner")
    assert ner == {"task": "radiology_ner", "model": "tiny-qwen2-f32.gguf", "level": None, "adapter": "ner.gguf",
                   "decoding": "strict", "max_tokens": 10}
    status, models = live.call("GET", "/v1/models")
    assert {m["id"] for m in models["data"]} == {f"radlite/{t}" for t in live.assistant.routes.tasks}

    status, answer = live.call("POST", "/v1/tasks/m_staging", {"report": REPORTS[1]})
    assert status == 200 and answer == {**alone(REPORTS[1], "m_staging"), "seconds": answer["seconds"]}
    assert answer["fields"]["stage"] in ("M0", "M1") and answer["route"]["model"] == "tiny-qwen2-f32.gguf"

    status, chat = live.call("POST", "/v1/chat/completions", {"model": "radlite/radiology_ner", "messages": [
        {"role": "system", "content": "ignored: the published system prompt is used"},
        {"role": "user", "content": REPORTS[0]}]})
    assert status == 200 and chat["model"] == "radlite/radiology_ner" and chat["object"] == "chat.completion"
    assert chat["choices"][0]["message"]["content"] == alone(REPORTS[0], "radiology_ner")["text"]
    assert chat["usage"]["completion_tokens"] == chat["radlite"]["tokens"]
    status, tagged = live.call("POST", "/v1/chat/completions",
                               {"messages": [{"role": "user", "content": "[TASK: m_staging]\n" + REPORTS[1]}]})
    assert status == 200 and tagged["model"] == "radlite/m_staging"
    assert tagged["choices"][0]["message"]["content"] == answer["text"]

    status, page = live.call("GET", "/")
    assert status == 200 and "RadLite assistant" in page and "/v1/tasks/" in page and "<textarea" in page
    status, metrics = live.call("GET", "/metrics")
    assert status == 200
    assert 'radlite_requests_total{route="task",task="m_staging",status="200"} 1' in metrics
    assert 'radlite_requests_total{route="chat",task="radiology_ner",status="200"}' in metrics
    assert 'radlite_request_seconds{task="m_staging",quantile="0.95"}' in metrics


def test_eight_concurrent_clients_mixing_tasks_get_what_each_gets_alone(live, alone):
    jobs = [(task, report) for report in REPORTS[:2] for task in
            ("radiology_ner", "m_staging", "radiology_nli", "impression_generation")]
    expected = [alone(r, t)["text"] for t, r in jobs]

    def client(job):
        return live.call("POST", f"/v1/tasks/{job[0]}", {"report": job[1]})

    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(client, jobs))
    assert len(jobs) == 8 and [s for s, _ in replies] == [200] * 8
    assert [a["text"] for _, a in replies] == expected


@pytest.mark.parametrize("method, path, body, status, needle", [
    ("POST", "/v1/tasks/staging", {"report": "x"}, 404, "unknown task 'staging'"),
    ("POST", "/v1/tasks/rads_assignment", {"report": "x"}, 404, "this server answers"),
    ("POST", "/v1/tasks/m_staging", b"", 400, "empty request body"),
    ("POST", "/v1/tasks/m_staging", b"{report: 1", 400, "invalid JSON"),
    ("POST", "/v1/tasks/m_staging", b'{"report": "\xff\xfe"}', 400, "not UTF-8"),
    ("POST", "/v1/tasks/m_staging", b"[1]", 400, "must be a JSON object"),
    ("POST", "/v1/tasks/m_staging", {"report": "x" * 5000}, 413, "over 4096 bytes"),
    ("POST", "/v1/tasks/m_staging", {"report": "x" * 1500}, 413, "send at most 1000"),
    ("POST", "/v1/tasks/m_staging", {"report": "   "}, 400, "non-empty string"),
    ("POST", "/v1/tasks/m_staging", {"report": "x", "max_tokens": -3}, 400, "positive integer"),
    ("POST", "/v1/tasks/m_staging", {"report": "x", "model": "/etc/passwd.gguf"}, 400, "unknown field 'model'"),
    ("POST", "/v1/chat/completions", {"model": "../models/x.gguf", "messages": [{"role": "user", "content": "x"}]},
     400, "files and paths are not accepted"),
    ("POST", "/v1/chat/completions", {"model": "radlite//tmp/x.gguf", "messages": [{"role": "user", "content": "x"}]},
     400, "files and paths are not accepted"),
    ("POST", "/v1/chat/completions", {"model": "radlite/m_staging", "messages": []}, 400, "non-empty list"),
    ("POST", "/v1/chat/completions", {"model": "radlite/m_staging", "stream": True,
                                      "messages": [{"role": "user", "content": "x"}]}, 400, "streaming"),
    ("GET", "/v1/tasks/m_staging", None, 405, None),
])
def test_a_bad_request_is_a_clear_4xx_and_the_server_keeps_serving(live, method, path, body, status, needle):
    got, reply = live.call(method, path, body)
    assert got == status
    if needle:
        assert needle in reply["error"]["message"]
        folders = {str(p.parent) for r in live.assistant.routes.routes.values() for p in (r.model, r.adapter) if p}
        assert not any(f in reply["error"]["message"] for f in folders)  # never where the server keeps its files
    ok, answer = live.call("POST", "/v1/tasks/m_staging", {"report": REPORTS[1]})
    assert ok == 200 and answer["fields"]["stage"] in ("M0", "M1")


def test_an_api_key_guards_every_route_but_health_and_is_never_echoed(routes):
    server = Live(routes, api_key=KEY)
    try:
        assert server.call("GET", "/health")[0] == 200
        assert server.call("GET", "/")[0] == 200  # the page asks for the key itself
        for headers in ({}, {"Authorization": "Bearer wrong-key"}, {"Authorization": KEY},
                        {"Authorization": f"Bearer {KEY}x"}):
            status, reply = server.call("POST", "/v1/tasks/m_staging", {"report": REPORTS[1]}, headers)
            assert status == 401 and "API key" in reply["error"]["message"] and KEY not in json.dumps(reply)
        assert server.call("GET", "/v1/tasks")[0] == 401 and server.call("GET", "/metrics")[0] == 401
        status, reply = server.call("POST", "/v1/tasks/m_staging", {"report": REPORTS[1]},
                                    {"Authorization": f"Bearer {KEY}"})
        assert status == 200 and reply["task"] == "m_staging"
    finally:
        server.stop()


def test_an_open_address_without_a_key_is_refused_at_start(routes, tmp_path, capsys):
    with Assistant(routes, n_threads=1) as assistant:
        with pytest.raises(UserError, match="--host 0.0.0.0 opens the assistant beyond this machine"):
            serve(assistant, host="0.0.0.0", port=_free_port(), api_key=None)
    path = save_routes(routes, tmp_path / "routes.json")
    assert main(["serve", "--routes", str(path), "--host", "0.0.0.0"]) == 2
    assert "give --api-key-file" in capsys.readouterr().err
    (tmp_path / "short.key").write_text("abc\n")
    assert main(["serve", "--routes", str(path), "--host", "0.0.0.0", "--api-key-file", str(tmp_path / "short.key")]) == 2
    assert "at least 16 characters" in capsys.readouterr().err


def test_radlite_run_one_report_stdin_and_a_batch(routes, alone, tmp_path, capsys, monkeypatch):
    import io

    path = save_routes(routes, tmp_path / "routes.json")
    assert main(["run", "--routes", str(path), "-t", "1", "--task", "m_staging", "--json", REPORTS[1]]) == 0
    one = json.loads(capsys.readouterr().out)
    assert one["text"] == alone(REPORTS[1], "m_staging")["text"] and one["route"]["model"].endswith(".gguf")

    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(("[TASK: radiology_ner]\n" + REPORTS[0]).encode())))
    assert main(["run", "--routes", str(path), "-t", "1"]) == 0
    shown = capsys.readouterr().out
    assert "task: radiology_ner" in shown and alone(REPORTS[0], "radiology_ner")["text"].strip() in shown

    batch = tmp_path / "in.jsonl"
    batch.write_text("\n".join(json.dumps(x) for x in [
        {"id": "a", "report": REPORTS[1], "task": "m_staging"},
        {"report": "[TASK: radiology_nli]\n" + REPORTS[2]}]) + "\n")
    assert main(["run", "--routes", str(path), "-t", "1", "--batch", str(batch), "-o", str(tmp_path / "out.jsonl")]) == 0
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [(r["id"], r["task"]) for r in rows] == [("a", "m_staging"), (2, "radiology_nli")]
    assert rows[1]["text"] == alone(REPORTS[2], "radiology_nli")["text"]

    batch.write_text(json.dumps({"report": "x"}) + "\n{broken\n")
    capsys.readouterr()
    assert main(["run", "--routes", str(path), "--batch", str(batch), "-o", str(tmp_path / "o2.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "line 2: invalid JSON" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o2.jsonl").exists()
    assert main(["run", "--routes", str(path), "--task", "rads_assignment", "x"]) == 2
    assert "not routed" in capsys.readouterr().err
    assert main(["run", "--routes", str(tmp_path / "none.json"), "x"]) == 2
