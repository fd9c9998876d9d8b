"""``vidrnn serve``: a local web page that labels uploaded videos with classifier checkpoints.

FastAPI + uvicorn serving one self-contained HTML page (inline CSS and JavaScript: nothing is
fetched from the internet), chosen because they are small, well kept, typed, come with a test
client, and need no front-end build. Endpoints:

* ``GET /`` -- the page: pick a checkpoint, upload a video, see the top-k labels with their
  probabilities, for videos longer than 10 s the label timeline per second, and for attention
  models an animated overlay of where the model looks (a GIF inlined in the JSON);
* ``GET /api/models`` -- the served checkpoints (``id``, model name, task, classes);
* ``POST /api/predict?model=ID`` -- multipart ``file``: the labels as JSON.

Safe by default: the CLI binds to 127.0.0.1; uploads larger than ``max_upload_mb`` are refused
from their ``Content-Length`` before the body is read (413); each upload goes to a new temporary
folder under a fixed name (nothing from the user is joined to a server path) and is deleted
after the request; the file is checked by decoding it, not by its extension (a non-video is a
422 with the decoder's message); a failing request gets its error as JSON and the server goes
on serving; requests do not share state (each model runs under its own lock).

Requires the ``web`` extra (fastapi, uvicorn, python-multipart). (No ``from __future__ import
annotations`` here: FastAPI reads the endpoint annotations at run time.)
"""


import base64
import re
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Sequence

from vidrnn.errors import VidrnnError

__all__ = ["create_app"]

_SUFFIX = re.compile(r"^\.[A-Za-z0-9]{1,5}$")


class _Served:
    """One checkpoint: its predictor (loaded at start) and a lock around its use."""

    def __init__(self, ident: str, checkpoint: str):
        from vidrnn.inference.checkpoint import load_model
        from vidrnn.inference.predict import Predictor

        model = load_model(checkpoint)
        info = model.vidrnn
        if info.task != "classification":
            raise ValueError(f"{checkpoint}: a {info.task} checkpoint; vidrnn serve labels videos with classifiers "
                             "(captioning and forecasting pages are not there yet)")
        self.id, self.checkpoint, self.info = ident, str(checkpoint), info
        self.predictor = Predictor(model)
        self.attention = self.predictor.has_attention
        self.lock = threading.Lock()

    def describe(self) -> dict:
        return {"id": self.id, "checkpoint": Path(self.checkpoint).name, "model": self.info.name,
                "task": self.info.task, "classes": len(self.info.class_names), "attention": self.attention}


def create_app(checkpoints: Sequence[str], *, max_upload_mb: float = 200.0, topk: int = 5):
    """The FastAPI application serving ``checkpoints`` (see the module docstring).

    Raises:
        ValueError: no checkpoints, or one that is not a classifier.
        FileNotFoundError, CheckpointError: a checkpoint cannot be loaded.
    """
    from fastapi import FastAPI, File, HTTPException, Request, UploadFile
    from fastapi.responses import HTMLResponse, JSONResponse

    if not checkpoints:
        raise ValueError("vidrnn serve needs at least one checkpoint")
    served = {}
    for i, c in enumerate(checkpoints):
        s = _Served(f"m{i}", c)
        served[s.id] = s
    limit = int(max_upload_mb * 2**20)
    app = FastAPI(title="vidrnn", docs_url=None, redoc_url=None, openapi_url=None)

    @app.middleware("http")
    async def refuse_large_uploads(request: Request, call_next):
        if request.method == "POST":
            size = request.headers.get("content-length")
            if size is None or not size.isdigit():
                return JSONResponse({"error": "uploads need a Content-Length"}, status_code=411)
            if int(size) > limit:
                return JSONResponse({"error": f"the upload is {int(size) / 2**20:.1f} MB, more than the limit of "
                                              f"{max_upload_mb:g} MB (vidrnn serve --max-upload-mb)"},
                                    status_code=413)
        return await call_next(request)

    @app.exception_handler(HTTPException)
    async def as_json(request, exc: HTTPException):
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code)

    @app.get("/", response_class=HTMLResponse)
    def page():
        return _PAGE

    @app.get("/api/models")
    def models():
        return [s.describe() for s in served.values()]

    @app.post("/api/predict")
    def predict(model: str, file: UploadFile = File(...)):
        s = served.get(model)
        if s is None:
            raise HTTPException(404, f"no model {model!r}; served: {', '.join(served)}")
        name = Path(file.filename or "upload").name  # shown back to the user only
        suffix = Path(name).suffix if _SUFFIX.match(Path(name).suffix or "") else ""
        with tempfile.TemporaryDirectory(prefix="vidrnn-serve-") as d:
            target = Path(d) / f"upload{suffix}"  # a fixed name: nothing from the user joins a server path
            with target.open("wb") as out:
                shutil.copyfileobj(file.file, out, 2**20)
            if target.stat().st_size > limit:
                raise HTTPException(413, f"the upload is more than the limit of {max_upload_mb:g} MB")
            try:
                with s.lock:
                    result = s.predictor.predict(target, topk=topk)
                    if s.attention:  # where the model looked in the first clip, as an animated GIF
                        drawn = s.predictor.write_attention(target, Path(d) / "attention")
                        gif = base64.b64encode(Path(drawn["gif"]).read_bytes()).decode("ascii")
                        result["attention_gif"] = f"data:image/gif;base64,{gif}"
            except (VidrnnError, ValueError, FileNotFoundError) as e:
                raise HTTPException(422, f"{name}: {str(e).replace(str(target), 'the upload')}") from None
        result["video"] = name
        return result

    return app


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>vidrnn</title>
<style>
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:56rem;color:#222}
h1{font-size:1.4rem} form{display:flex;gap:.6rem;align-items:center;flex-wrap:wrap}
#status{margin:1rem 0;color:#555} #error{color:#b00020;white-space:pre-wrap}
table{border-collapse:collapse} td{padding:.2rem .6rem}
.bar{background:#3b7dd8;height:.8rem;display:inline-block}
#timeline{display:flex;height:2rem;margin-top:.5rem;border:1px solid #ccc}
#timeline div{height:100%;overflow:hidden;font-size:.7rem;color:#fff;white-space:nowrap}
</style></head><body>
<h1>vidrnn: label a video</h1>
<form id="form"><select id="model"></select><input type="file" id="file" accept="video/*,image/gif">
<button type="submit">Label</button></form>
<div id="status"></div><div id="error"></div>
<div id="result" hidden><h2 id="title"></h2><table id="topk"></table>
<h3 id="tl-title" hidden>Label per second</h3><div id="timeline"></div><div id="legend"></div>
<h3 id="att-title" hidden>Where the model looks (first clip)</h3><img id="attention" alt="attention overlay" hidden></div>
<script>
const $ = (id) => document.getElementById(id);
const palette = ["#3b7dd8","#d8573b","#3bb273","#a83bd8","#d8b13b","#3bc9d8","#7d7d7d","#d83b8f"];
fetch("/api/models").then(r => r.json()).then(ms => {
  for (const m of ms) { const o = document.createElement("option"); o.value = m.id;
    o.textContent = `${m.model} (${m.checkpoint}, ${m.classes} classes)`; $("model").appendChild(o); }
});
$("form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const f = $("file").files[0];
  if (!f) { $("error").textContent = "choose a video first"; return; }
  $("error").textContent = ""; $("result").hidden = true;
  $("status").textContent = `processing ${f.name} ...`;
  const body = new FormData(); body.append("file", f);
  try {
    const r = await fetch(`/api/predict?model=${encodeURIComponent($("model").value)}`, {method: "POST", body});
    const j = await r.json();
    $("status").textContent = "";
    if (!r.ok) { $("error").textContent = j.error || r.statusText; return; }
    show(j);
  } catch (e) { $("status").textContent = ""; $("error").textContent = String(e); }
});
function show(j) {
  $("title").textContent = `${j.video} (${j.duration.toFixed(1)} s, ${j.frames} frames)`;
  $("topk").innerHTML = "";
  for (const t of j.topk) {
    const tr = document.createElement("tr");
    tr.innerHTML = `<td class="label"></td><td>${(100 * t.prob).toFixed(1)}%</td>` +
                   `<td><span class="bar" style="width:${Math.round(300 * t.prob)}px"></span></td>`;
    tr.querySelector(".label").textContent = t.label;
    $("topk").appendChild(tr);
  }
  const tl = j.timeline || [];
  $("tl-title").hidden = tl.length === 0; $("timeline").innerHTML = ""; $("legend").innerHTML = "";
  $("timeline").style.display = tl.length ? "flex" : "none";
  const colour = {}; let k = 0;
  for (const s of tl) {
    if (!(s.label in colour)) colour[s.label] = palette[k++ % palette.length];
    const d = document.createElement("div");
    d.style.flex = String(s.end - s.start); d.style.background = colour[s.label];
    d.title = `${s.start}-${s.end} s: ${s.label} (${(100 * s.prob).toFixed(0)}%)`;
    if (tl.length <= 20) d.textContent = s.label;  // longer timelines: the legend and the tooltips name them
    $("timeline").appendChild(d);
  }
  for (const [label, c] of Object.entries(colour)) {
    const span = document.createElement("span"); span.style.color = c; span.textContent = `\\u25A0 ${label}  `;
    $("legend").appendChild(span);
  }
  $("att-title").hidden = $("attention").hidden = !j.attention_gif;
  if (j.attention_gif) $("attention").src = j.attention_gif;
  $("result").hidden = false;
}
</script></body></html>
"""
