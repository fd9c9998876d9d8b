"""``vidrnn serve``: a local web page for classifier, captioning and forecasting checkpoints.

FastAPI + uvicorn serving one self-contained HTML page (``page.html``: inline CSS and JavaScript,
nothing fetched from the internet), chosen because they are small, well kept, typed, come with a
test client, and need no front-end build. Endpoints:

* ``GET /`` -- the page: pick a checkpoint, upload a file or pick one of the checkpoint's
  examples, and see (classifier) the top-k labels, the label per second of long videos as it is
  computed, the attention overlay of attention models; (captioner) the caption and the
  per-word attention figure; (forecaster) input, truth and forecast side by side with a frame
  slider, a colour scale with units (intensity; radar: mm/h or dBZ), and the scores per lead
  time (radar: CSI/POD/FAR beside persistence and pysteps extrapolation);
* ``GET /api/models`` -- the served checkpoints (``id``, model, task, what they accept, examples);
* ``POST /api/predict?model=ID[&stream=true]`` -- multipart ``file``; ``GET
  /api/example?model=ID&example=K[&stream=true]`` -- example ``K``. Without ``stream`` the result
  as one JSON object; with it, newline-delimited JSON events (``{"progress": ...}`` while it
  runs, then ``{"result": ...}``, or ``{"error": ...}`` if it fails midway).

Safe by default: the CLI binds to 127.0.0.1; uploads larger than ``max_upload_mb`` are refused
from their ``Content-Length`` before the body is read (413); each request works in a new
temporary folder, the upload under a fixed name (nothing from the user is joined to a server
path; examples are chosen by index), deleted when the request ends; a file is checked by its
content (decoded, or its magic bytes), not its extension, and refused with 422 and the reason;
a request that fails gets its error as JSON and the server goes on serving; requests do not share
state (each model runs one request at a time under its own lock, in a worker thread that
finishes and cleans up even if the browser goes away).

Requires the ``web`` extra (fastapi, uvicorn, python-multipart). (No ``from __future__ import
annotations`` here: FastAPI reads the endpoint annotations at run time.)
"""


import json
import queue
import shutil
import tempfile
import threading
from importlib import resources
from pathlib import Path
from typing import Iterator, Sequence

from vidrnn.errors import VidrnnError

__all__ = ["create_app"]

_DONE = object()


def _run(served, source, name: str, workdir: Path, cleanup: bool) -> Iterator:
    """Run ``served.events`` in a worker thread (under the model's lock) and hand its events over
    as JSON lines; the first item tells success: an event line, or an ``(status, message)`` error."""
    q: queue.Queue = queue.Queue()

    def hide(e: Exception) -> str:  # the server's paths stay on the server
        msg = str(e).replace(str(source), "the upload") if isinstance(source, Path) else str(e)
        return msg.replace(str(workdir), "the request folder")

    def work():
        try:
            with served.lock:
                for event in served.events(source, name, workdir):
                    q.put(json.dumps(event))  # serialised here: the worker may change the dicts afterwards
        except (VidrnnError, ValueError, FileNotFoundError, IndexError) as e:
            q.put((422, f"{name}: {hide(e)}"))
        except Exception as e:  # noqa: BLE001 -- the page shows it, the server keeps serving
            q.put((500, f"{name}: {e.__class__.__name__}: {hide(e)}"))
        finally:
            if cleanup:
                shutil.rmtree(workdir, ignore_errors=True)
            q.put(_DONE)

    threading.Thread(target=work, daemon=True, name=f"vidrnn-serve-{served.id}").start()
    while (item := q.get()) is not _DONE:
        yield item


def create_app(checkpoints: Sequence[str], *, max_upload_mb: float = 200.0):
    """The FastAPI application serving ``checkpoints`` (see the module docstring).

    Raises:
        ValueError: no checkpoints, or one whose task the page does not show (language models).
        FileNotFoundError, CheckpointError: a checkpoint cannot be loaded.
    """
    from fastapi import FastAPI, File, HTTPException, Request, UploadFile
    from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse

    from vidrnn.web.served import UploadRefused, serve_checkpoint

    if not checkpoints:
        raise ValueError("vidrnn serve needs at least one checkpoint")
    served = {}
    for i, c in enumerate(checkpoints):
        s = serve_checkpoint(f"m{i}", c)
        served[s.id] = s
    described = [s.describe() for s in served.values()]  # examples listed once, at start
    limit = int(max_upload_mb * 2**20)
    page_html = resources.files("vidrnn.web").joinpath("page.html").read_text(encoding="utf-8")
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

    def model_or_404(model: str):
        s = served.get(model)
        if s is None:
            raise HTTPException(404, f"no model {model!r}; served: {', '.join(served)}")
        return s

    def respond(s, source, name: str, workdir: Path, stream: bool):
        events = _run(s, source, name, workdir, cleanup=True)
        first = next(events)
        if isinstance(first, tuple):  # failed before anything was shown: an HTTP error
            raise HTTPException(*first)
        if stream:
            def lines():
                yield first + "\n"
                for item in events:
                    yield (json.dumps({"error": item[1]}) if isinstance(item, tuple) else item) + "\n"

            return StreamingResponse(lines(), media_type="application/x-ndjson")
        last = first
        for item in events:
            if isinstance(item, tuple):
                raise HTTPException(*item)
            last = item
        return JSONResponse(content=json.loads(last)["result"])

    @app.get("/", response_class=HTMLResponse)
    def page():
        return page_html

    @app.get("/api/models")
    def models():
        return described

    @app.post("/api/predict")
    def predict(model: str, stream: bool = False, file: UploadFile = File(...)):
        s = model_or_404(model)
        name = Path(file.filename or "upload").name or "upload"  # shown back to the user only
        workdir = Path(tempfile.mkdtemp(prefix="vidrnn-serve-"))
        try:
            target = workdir / "upload"  # a fixed name: nothing from the user joins a server path
            with target.open("wb") as out:
                shutil.copyfileobj(file.file, out, 2**20)
            if target.stat().st_size > limit:
                raise HTTPException(413, f"the upload is more than the limit of {max_upload_mb:g} MB")
            try:
                target = s.prepare(target)
            except UploadRefused as e:
                raise HTTPException(422, f"{name}: {e}") from None
        except BaseException:
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        return respond(s, target, name, workdir, stream)

    @app.get("/api/example")
    def example(model: str, example: int, stream: bool = False):
        s = model_or_404(model)
        try:
            source = s.example(example)
        except IndexError as e:
            raise HTTPException(404, str(e)) from None
        name = s.examples()[example]["name"]
        return respond(s, source, name, Path(tempfile.mkdtemp(prefix="vidrnn-serve-")), stream)

    return app
