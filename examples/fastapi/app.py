"""A tabcast backend in FastAPI: the guide's protocol plus every tabcast extension.

One process, tasks in memory (put them in Redis Streams to run several). Runs on
Debian bookworm's FastAPI 0.92 / uvicorn 0.17 / Starlette 0.26 (tested in CI), with only
APIs that current FastAPI still has:

    python3 -m uvicorn app:app --ws wsproto --port 8000

`--ws wsproto` matters: on SIGTERM uvicorn 0.17 then closes every socket with 1012
(service restart), which tabcast clients answer with an immediate reconnect. Its default
(`--ws auto`: the `websockets` package when installed) drops them with 1006 instead (retried after a backoff delay),
and a FastAPI shutdown handler runs only after uvicorn has closed the sockets.

Settings (environment):
  TABCAST_ORIGINS          comma-separated page origins, or "*"; default: pages on
                           localhost / 127.0.0.1 / [::1], any port
  TABCAST_AUTH_SECRET      turns on signed per-task tokens (PROTOCOL.md, "Auth"); at least 32 bytes
  TABCAST_STALE_AFTER_MS   a running task with no update for this long fails; default 60000
  TABCAST_DEMO             "1" turns on the demo endpoints (task creation, events); off by
                           default: anyone who can reach them can start or end any task

Job code reports through create_task / progress / complete / fail / heartbeat.
"""
import asyncio
import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import time
from datetime import datetime, timezone
from typing import Optional

from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import JSONResponse, Response

TASK_ID = re.compile(r"(?!\.)[A-Za-z0-9_.:~-]{1,128}")
DIGITS = re.compile(r"[0-9]{1,15}")
LOCALHOST = re.compile(r"https?://(localhost|127\.0\.0\.1|\[::1\])(:\d{1,5})?", re.I)
ORIGINS = [o.strip().rstrip("/").lower() for o in os.environ.get("TABCAST_ORIGINS", "").split(",") if o.strip()]
AUTH_SECRET = os.environ.get("TABCAST_AUTH_SECRET", "").encode()
if AUTH_SECRET and len(AUTH_SECRET) < 32:  # as the reference backend: a short secret can be guessed
    raise SystemExit(f"TABCAST_AUTH_SECRET must be at least 32 bytes (openssl rand -base64 32 makes one), got {len(AUTH_SECRET)}")
STALE_AFTER = int(os.environ.get("TABCAST_STALE_AFTER_MS", "60000")) / 1000
DEMO = os.environ.get("TABCAST_DEMO", "0") == "1"
HISTORY = 1000  # messages kept per task for ?since= replays
RETENTION = 3600  # seconds a finished task stays readable
MAX_CLIENT_MESSAGE_BYTES = 64 * 1024  # the client's send() limit (src/protocol.ts)
TOKEN_TTL = 3600
# The numbering history of every task lives in this process: a new process is a new epoch.
EPOCH = secrets.token_urlsafe(12)
CAPABILITIES = ["seq", "since", "epoch", "pong"] + (["auth"] if AUTH_SECRET else [])

app = FastAPI()


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def origin_allowed(origin: Optional[str]) -> bool:
    # No Origin header: not a web page (curl, a backend), which the header exists to tell apart.
    if origin is None:
        return True
    if ORIGINS:
        return "*" in ORIGINS or origin.lower() in ORIGINS
    return LOCALHOST.fullmatch(origin) is not None


# --- Signed per-task tokens: "v1.<b64url(task id)>.<exp>.<b64url(HMAC-SHA256)>" ---------

def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign_token(task_id: str, ttl: int = TOKEN_TTL) -> str:
    body = f"v1.{b64url(task_id.encode())}.{int(time.time()) + ttl}"
    return f"{body}.{b64url(hmac.new(AUTH_SECRET, body.encode(), hashlib.sha256).digest())}"


def check_token(token: Optional[str], task_id: str) -> str:
    """'allow', 'unauthenticated' (no, bad or expired token) or 'forbidden' (another task's)."""
    if not AUTH_SECRET:
        return "allow"
    parts = (token or "").split(".")
    if len(parts) != 4 or parts[0] != "v1" or not DIGITS.fullmatch(parts[2]):
        return "unauthenticated"
    body = ".".join(parts[:3])
    expected = b64url(hmac.new(AUTH_SECRET, body.encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(parts[3].encode(), expected.encode()) or int(parts[2]) < time.time():
        return "unauthenticated"
    try:
        bound = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)).decode()
    except ValueError:
        return "unauthenticated"
    return "allow" if hmac.compare_digest(bound.encode(), task_id.encode()) else "forbidden"


def bearer(request: Request) -> Optional[str]:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


# --- Tasks and the job API --------------------------------------------------------------

class Task:
    def __init__(self, task_id: str, task_name: Optional[str]):
        self.task_id, self.seq, self.history = task_id, 0, []
        self.status = {"project_id": task_id, "status": "running", "progress": 0.0, "seq": 0,
                       "epoch": EPOCH, "timestamp": now()}
        if task_name:
            self.status["task_name"] = task_name
        self.timer: Optional[asyncio.TimerHandle] = None  # the lease, then the retention


tasks: dict[str, Task] = {}
# Open sockets per task id, known task or not. A mere subscriber leaves no state behind.
subscribers: dict[str, set[asyncio.Queue]] = {}
opened: dict[str, int] = {}  # sockets accepted per task id while it is known or followed (/healthz)


def forget(task_id: str) -> None:
    """What is kept of a task id goes once it is neither a task nor followed by a socket."""
    if task_id not in tasks and task_id not in subscribers:
        opened.pop(task_id, None)


def drop_task(task_id: str) -> None:
    tasks.pop(task_id, None)
    forget(task_id)


def create_task(task_id: Optional[str] = None, task_name: Optional[str] = None) -> Task:
    task_id = task_id or f"task_{secrets.token_hex(8)}"
    if not TASK_ID.fullmatch(task_id):
        raise ValueError(f"invalid task id {task_id!r}")
    if task_id in tasks:
        raise KeyError(f"task {task_id} exists")
    task = tasks[task_id] = Task(task_id, task_name)
    renew_lease(task)
    return task


def renew_lease(task: Task) -> None:
    if task.timer:
        task.timer.cancel()
    task.timer = asyncio.get_running_loop().call_later(STALE_AFTER, expire_lease, task.task_id)


def expire_lease(task_id: str) -> None:
    fail(task_id, f"the job stopped reporting (no update for {STALE_AFTER:g} s)", {"code": "job_stale"})


def heartbeat(task_id: str) -> None:
    """Job code that has nothing new to report calls this to keep its task alive."""
    renew_lease(running(task_id))


def running(task_id: str) -> Task:
    task = tasks.get(task_id)
    if task is None:
        raise KeyError(f"task {task_id} not found")
    if task.status["status"] != "running":
        raise RuntimeError(f"task {task_id} already ended")
    return task


def publish(task_id: str, message: dict) -> dict:
    task = running(task_id)
    task.seq += 1
    message = {**message, "project_id": task_id, "seq": task.seq, "timestamp": now()}
    task.history = (task.history + [message])[-HISTORY:]
    kind = message["type"]
    task.status.update({k: message[k] for k in ("progress", "message", "task_name", "result", "error", "details")
                        if message.get(k) is not None})
    task.status.update(seq=task.seq, timestamp=message["timestamp"],
                       status={"progress": "running", "completed": "completed"}.get(kind, "failed"))
    if kind == "progress":
        renew_lease(task)
    else:  # terminal: the lease ends, the task stays readable for RETENTION
        task.timer.cancel()
        task.timer = asyncio.get_running_loop().call_later(RETENTION, drop_task, task_id)
    for queue in list(subscribers.get(task_id, ())):
        queue.put_nowait(message)
    return message


def progress(task_id: str, value: float, message: str, **fields) -> dict:
    return publish(task_id, {**fields, "type": "progress", "progress": value, "message": message, "status": "running"})


def complete(task_id: str, result: dict, **fields) -> dict:
    return publish(task_id, {**fields, "type": "completed", "progress": 1, "result": result})


def fail(task_id: str, error: str, details: Optional[dict] = None, **fields) -> dict:
    return publish(task_id, {**fields, "type": "error", "error": error, "details": details or {}})


# --- The stream --------------------------------------------------------------------------

def connection_error(code: str, text: str) -> dict:
    return {"type": "error", "error": text, "timestamp": now(), "details": {"scope": "connection", "code": code}}


def catch_up(task: Optional[Task], since: Optional[int]) -> list:
    if task is None:
        return []
    latest = task.history[-1:]  # the current state
    if since is None or since > task.seq:  # no since, or a since from an earlier epoch
        return latest
    if since == task.seq:
        return []
    if task.history and task.history[0]["seq"] <= since + 1:
        return [m for m in task.history if m["seq"] > since]
    return latest  # the history no longer reaches back to since + 1


def answer(text: Optional[str], data: Optional[bytes]) -> Optional[dict]:
    """The reply to one client frame, or None for none."""
    if text is None:
        return connection_error("bad_request", f"client message must be text (JSON), got {len(data or b'')} bytes of binary data")
    if text.strip() == "ping":
        return {"type": "pong", "timestamp": now()}
    try:
        message = json.loads(text)
    except ValueError:
        return connection_error("bad_request", "client message is not valid JSON")
    if not isinstance(message, dict):
        return connection_error("bad_request", "client message must be a JSON object")
    if message.get("type") == "ping":
        return {"type": "pong", "timestamp": now()}
    return connection_error("unsupported", "this server has no handler for client messages")


@app.websocket("/api/v1/ws/projects/{task_id}/stream")
async def stream(ws: WebSocket, task_id: str):
    if not origin_allowed(ws.headers.get("origin")):
        await ws.close(code=1008)  # before accept(): uvicorn refuses the handshake with 403
        return
    offered = ws.scope.get("subprotocols") or []
    # Browsers fail a handshake that offered subprotocols and got none back.
    await ws.accept(subprotocol="tabcast" if "tabcast" in offered else None)
    if not TASK_ID.fullmatch(task_id):
        await ws.close(code=4000, reason="invalid task id")
        return
    token = next((p[len("tabcast.bearer."):] for p in offered if p.startswith("tabcast.bearer.")), None)
    decision = check_token(token, task_id)
    if decision != "allow":  # closed after accept() so that the browser sees the code
        await ws.close(code=4401 if decision == "unauthenticated" else 4403, reason=decision)
        return
    raw_since = ws.query_params.get("since")
    since = int(raw_since) if raw_since is not None and DIGITS.fullmatch(raw_since) else None
    task = tasks.get(task_id)
    queue: asyncio.Queue = asyncio.Queue()
    subscribers.setdefault(task_id, set()).add(queue)  # before the catch-up: nothing slips between
    opened[task_id] = opened.get(task_id, 0) + 1
    connected = {"type": "connected", "project_id": task_id, "timestamp": now(), "epoch": EPOCH,
                 "capabilities": CAPABILITIES, "last_seq": task.seq if task else 0}
    if task:  # left out for a task this server does not know (yet)
        connected["status"] = task.status["status"]
    queue.put_nowait(connected)
    if raw_since is not None and since is None:
        queue.put_nowait(connection_error("bad_request", f"since must be a non-negative integer, got {raw_since[:40]!r}; ignored"))
    for message in catch_up(task, since):
        queue.put_nowait(message)

    async def writer():  # the only coroutine that sends, so frames never interleave
        last = 0
        while True:
            message = await queue.get()
            seq = message.get("seq")
            if seq is None or seq > last:  # never the same seq twice
                last = seq or last
                await ws.send_text(json.dumps(message, ensure_ascii=False))

    sending = asyncio.create_task(writer())
    # A send to a socket that just went away fails the writer; the loop below notices the close.
    sending.add_done_callback(lambda done: done.cancelled() or done.exception())
    try:
        while True:
            frame = await ws.receive()
            if frame["type"] == "websocket.disconnect":
                break
            text, data = frame.get("text"), frame.get("bytes")
            if len((text or "").encode()) > MAX_CLIENT_MESSAGE_BYTES or len(data or b"") > MAX_CLIENT_MESSAGE_BYTES:
                await ws.close(code=1009, reason="message too big")
                break
            reply = answer(text, data)
            if reply:
                queue.put_nowait(reply)
    finally:
        sending.cancel()
        queue_set = subscribers.get(task_id, set())
        queue_set.discard(queue)
        if not queue_set:
            subscribers.pop(task_id, None)
        forget(task_id)


# --- HTTP: origin check and CORS for every route, the status endpoint --------------------

NO_STORE = {"Cache-Control": "no-store"}  # task state changes by the second; no cache may hold it


def json_answer(body: dict, status: int = 200, headers: Optional[dict] = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers={**NO_STORE, **(headers or {})})


@app.middleware("http")
async def origins(request: Request, call_next):
    origin = request.headers.get("origin")
    if not origin_allowed(origin):
        # Refused outright, not merely answered without CORS headers: a simple POST from any
        # page would otherwise still create a task.
        return json_answer({"error": f"origin {origin} is not allowed"}, 403, {"Vary": "Origin"})
    cors = {"Vary": "Origin"}
    if origin is not None:
        cors.update({"Access-Control-Allow-Origin": origin, "Access-Control-Allow-Credentials": "true"})
    if request.method == "OPTIONS":
        return Response(status_code=204, headers={**cors, "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
                                                  "Access-Control-Allow-Headers": "Authorization, Content-Type",
                                                  "Access-Control-Max-Age": "600"})
    response = await call_next(request)
    response.headers.update(cors)
    return response


@app.get("/api/v1/projects/{task_id}/status")
async def status(task_id: str, request: Request):
    if not TASK_ID.fullmatch(task_id):
        return json_answer({"error": "invalid task id"}, 400)
    token = bearer(request)
    decision = check_token(token, task_id)
    if decision != "allow":
        # RFC 6750, as PROTOCOL.md's refusals table: the scheme, and whether a token came.
        challenge = 'Bearer realm="tabcast"' + ('' if token is None else ', error="invalid_token"')
        return json_answer({"error": decision}, 401 if decision == "unauthenticated" else 403,
                           {"WWW-Authenticate": challenge} if decision == "unauthenticated" else None)
    task = tasks.get(task_id)
    if task is None:
        return json_answer({"error": f"task {task_id} not found", "project_id": task_id}, 404)
    return json_answer(task.status)


@app.get("/healthz")
async def healthz():
    health = {"ok": True, "tasks": len(tasks), "connections": sum(len(s) for s in subscribers.values())}
    if DEMO:  # task ids are not for everyone: per-task counts only with the demo (the tests count sockets here)
        health.update(epoch=EPOCH, connections_by_task={k: len(s) for k, s in subscribers.items()}, opened_by_task=opened)
    return json_answer(health)


# --- Demo endpoints (TABCAST_DEMO=1 turns them on): start a task, drive it by hand -------

async def demo_job(task_id: str, steps: int, step_ms: int, fail_at: Optional[float]) -> None:
    try:
        for step in range(1, steps + 1):
            await asyncio.sleep(step_ms / 1000)
            value = step / steps
            if fail_at is not None and value >= fail_at:
                fail(task_id, "ElevenLabs API 호출 실패", {"status_code": 500, "reason": "Internal Server Error"})
                return
            progress(task_id, value, f"TTS 생성 중... ({step}/{steps})")
        complete(task_id, {"audio_id": f"audio_{task_id}", "steps": steps})
    except (KeyError, RuntimeError):
        pass  # the task ended (or expired) meanwhile


@app.post("/api/v1/projects")
async def create(request: Request):
    if not DEMO:
        return json_answer({"error": "this server does not create demo tasks"}, 404)
    try:
        body = json.loads(await request.body() or b"{}")
        steps, step_ms = int(body.get("steps", 10)), int(body.get("stepMs", 300))
        fail_at = None if body.get("failAt") is None else float(body["failAt"])
        if not (0 <= steps <= 1000 and 0 <= step_ms <= 60000):
            raise ValueError("steps must be 0-1000 and stepMs 0-60000")
        task = create_task(body.get("taskId"), body.get("taskName", "오디오 생성"))
    except KeyError as error:
        return json_answer({"error": str(error).strip("'")}, 409)
    except (ValueError, TypeError, AttributeError) as error:
        return json_answer({"error": f"bad request: {error}"}, 400)
    if steps > 0:  # steps 0: the task waits for POST .../events
        asyncio.get_running_loop().create_task(demo_job(task.task_id, steps, step_ms, fail_at))
    answer_body = {"project_id": task.task_id, "task_id": task.task_id, "epoch": EPOCH,
                   "status_url": f"/api/v1/projects/{task.task_id}/status",
                   "stream_url": f"/api/v1/ws/projects/{task.task_id}/stream"}
    if AUTH_SECRET:
        answer_body["token"] = sign_token(task.task_id)
    return json_answer(answer_body, 201)


@app.post("/api/v1/projects/{task_id}/events")
async def event(task_id: str, request: Request):
    """Demo: publish {"type": "progress" | "completed" | "error" | "heartbeat", ...} for a task."""
    if not DEMO:
        return json_answer({"error": "this server does not take demo events"}, 404)
    try:
        body = json.loads(await request.body() or b"{}")
        kind = body.get("type")
        if kind == "heartbeat":
            heartbeat(task_id)
            return json_answer({"ok": True})
        if kind not in ("progress", "completed", "error"):
            raise ValueError('type must be "progress", "completed", "error" or "heartbeat"')
        if kind == "progress" and not 0 <= float(body.get("progress", -1)) <= 1:
            raise ValueError("progress must be a number from 0 to 1")
        return json_answer(publish(task_id, body))
    except KeyError as error:
        return json_answer({"error": str(error).strip("'")}, 404)
    except RuntimeError as error:
        return json_answer({"error": str(error)}, 409)
    except (ValueError, TypeError, AttributeError) as error:
        return json_answer({"error": f"bad request: {error}"}, 400)
