"""The demo's "legacy" app: it knows nothing about login and trusts only the identity headers.

`gateway demo` runs it behind the gateway so a visitor can watch each feature work: identity
headers arriving (and spoofed ones or the session cookie not arriving), several Set-Cookie
headers surviving, server-sent events streaming unbuffered, and a WebSocket bridged with the
identity carried over the upgrade. It imports nothing from the gateway but the stylesheet, so
it stays an honest stand-in for an app the gateway cannot change.
"""

import asyncio
from datetime import UTC, datetime
from html import escape
from urllib.parse import unquote

from aiohttp import WSCloseCode, WSMsgType, web

from gateway.pages import builtin_stylesheet

TICK_INTERVAL = web.AppKey("tick_interval", float)
"""Seconds between server-sent events; tests shorten it instead of sleeping through it."""

DEFAULT_TICKS = 60
MAX_TICKS = 600

_NAV = (
    ("/", "Who am I"),
    ("/public/", "Public"),
    ("/admin/", "Admin"),
    ("/events", "SSE"),
    ("/ws", "WebSocket"),
)

_CURRENT = ' aria-current="page"'

# Close codes an endpoint may send (RFC 6455 §7.4); 1005/1006/1015 only describe a close.
_SENDABLE_CLOSE_CODES = frozenset({*range(1000, 1004), *range(1007, 1015), *range(3000, 5000)})

_TICKER_JS = """
const out = document.getElementById('ticker');
const note = document.getElementById('ticker-state');
const source = new EventSource('/events/stream');
source.onopen = () => { note.textContent = 'connected'; };
source.onmessage = (event) => {
  out.textContent += event.data + '\\n';
  out.scrollTop = out.scrollHeight;
};
source.onerror = () => {
  note.textContent = source.readyState === EventSource.CLOSED ? 'closed' : 'reconnecting…';
};
"""

_WS_JS = """
const log = document.getElementById('log');
const form = document.getElementById('send');
const input = document.getElementById('message');
const button = form.querySelector('button');
const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
const ws = new WebSocket(scheme + '//' + location.host + '/ws/echo');
ws.binaryType = 'arraybuffer';
function write(text, kind) {
  const line = document.createElement('div');
  line.className = kind;
  line.textContent = text;
  log.append(line);
  log.scrollTop = log.scrollHeight;
}
ws.onopen = () => { button.disabled = false; write('connected', 'info'); };
ws.onmessage = (event) => {
  const data = typeof event.data === 'string' ? event.data : event.data.byteLength + ' bytes';
  write('← ' + data, 'received');
};
ws.onclose = (event) => { button.disabled = true; write('closed (' + event.code + ')', 'error'); };
form.addEventListener('submit', (event) => {
  event.preventDefault();
  if (ws.readyState !== WebSocket.OPEN || input.value === '') return;
  ws.send(input.value);
  write('→ ' + input.value, 'sent');
  input.value = '';
  input.focus();
});
"""


def build_sample_app(*, tick_interval: float = 1.0) -> web.Application:
    """The legacy app `gateway demo` puts behind the gateway."""
    app = web.Application()
    app[TICK_INTERVAL] = tick_interval
    app.router.add_get("/", who_am_i)
    app.router.add_get("/public/", public_page)
    app.router.add_get("/admin/", admin_page)
    app.router.add_get("/events", events_page)
    app.router.add_get("/events/stream", event_stream, allow_head=False)
    app.router.add_get("/ws", websocket_page)
    app.router.add_get("/ws/echo", websocket_echo, allow_head=False)
    return app


# --- identity, read the way a legacy app would: straight from the headers ---------------------


def identity_from_headers(request: web.Request) -> tuple[str | None, str | None]:
    """(email, id) as the gateway sent them; non-ASCII values arrive percent-encoded UTF-8."""
    email = request.headers.get("X-User-Email")
    user_id = request.headers.get("X-User-Id")
    return (unquote(email) if email else None, unquote(user_id) if user_id else None)


def _user_html(request: web.Request) -> str:
    email, user_id = identity_from_headers(request)
    if email is None and user_id is None:
        return "<strong>anonymous</strong>"
    name = f"<strong>{escape(email or 'someone without an email')}</strong>"
    if user_id is None:
        return name
    return f"{name} <span class='muted'>(id <code>{escape(user_id)}</code>)</span>"


# --- page shell -----------------------------------------------------------------------------


def _nav_html(current: str) -> str:
    links = "".join(
        f'<a href="{href}"{_CURRENT if href == current else ""}>{label}</a>' for href, label in _NAV
    )
    return (
        '<header class="topbar"><nav aria-label="Legacy app">'
        f'<a class="brand" href="/">Legacy app</a>{links}</nav></header>'
    )


def _page(title: str, current: str, body: str, script: str = "") -> web.Response:
    """Every page: same head, top bar and footer; `Cache-Control: no-store` as it shows a user."""
    text = (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)} · Legacy app</title><style>{builtin_stylesheet()}</style></head>"
        f'<body>{_nav_html(current)}<main class="card">{body}</main>'
        '<footer class="foot">A sample app that knows nothing about login</footer>'
        + (f"<script>{script}</script>" if script else "")
        + "</body></html>"
    )
    response = web.Response(text=text, content_type="text/html")
    response.headers["Cache-Control"] = "no-store"
    return response


def _actions(name: str, *links: tuple[str, str], secondary: bool = False) -> str:
    kind = "button secondary" if secondary else "button"
    buttons = "".join(f'<a class="{kind}" href="{escape(href)}">{text}</a>' for href, text in links)
    return f'<nav class="actions" aria-label="{name}">{buttons}</nav>'


def _headers_table(request: web.Request) -> str:
    """Every header as received, so a visitor can see what the gateway let through."""
    rows = "".join(
        f"<tr><th scope='row'>{escape(name)}</th><td><code>{escape(value)}</code></td></tr>"
        for name, value in request.headers.items()
    )
    return (
        "<table class='headers' aria-labelledby='received'><thead><tr>"
        "<th scope='col'>Name</th><th scope='col'>Value</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )


# --- pages ----------------------------------------------------------------------------------


async def who_am_i(request: web.Request) -> web.Response:
    """Who the app thinks you are, and the raw headers that told it."""
    body = (
        "<h1>Who am I</h1>"
        f"<p class='lead'>This app thinks you are {_user_html(request)}.</p>"
        "<p class='muted'>It only reads <code>X-User-Email</code> and <code>X-User-Id</code>; "
        "the gateway sets them and removes any the browser sent.</p>"
        + _actions(
            "Account",
            ("/_auth/logout", "Sign out"),
            ("/_auth/sessions", "Your sessions"),
            ("/_auth/refresh?return_to=/", "Re-authenticate"),
        )
        + _actions(
            "Try",
            ("/public/", "Public page"),
            ("/admin/", "Admin (needs 2FA)"),
            ("/events", "Live ticker (SSE)"),
            ("/ws", "WebSocket echo"),
            ("/_auth/whoami", "JSON whoami"),
            secondary=True,
        )
        + "<h2 id='received'>Request headers</h2>"
        "<p class='muted'>No <code>ory_kratos_session</code> cookie and no identity header "
        "of your own should appear here.</p>" + _headers_table(request)
    )
    response = _page("Who am I", "/", body)
    # Two cookies on purpose: several Set-Cookie headers must survive the proxy.
    response.set_cookie("legacy_pref", "1", httponly=True, samesite="Lax")
    response.set_cookie("legacy_theme", "light", samesite="Lax")
    return response


async def public_page(request: web.Request) -> web.Response:
    """Served without login (route `optional`): identity headers appear only when signed in."""
    email, user_id = identity_from_headers(request)
    state = "not signed in" if email is None and user_id is None else "signed in"
    who = f"You are <strong>{state}</strong>" + (
        f" as {_user_html(request)}" if state == "signed in" else ""
    )
    body = (
        "<h1>Public page</h1>"
        f"<p class='lead'>{who}.</p>"
        "<p>Anyone may read this page. When you have a session the gateway still tells the "
        "app who you are, so it can greet you.</p>"
        + _actions("Next", ("/", "Who am I"), ("/admin/", "Admin (needs 2FA)"), secondary=True)
    )
    return _page("Public page", "/public/", body)


async def admin_page(request: web.Request) -> web.Response:
    """The gateway only lets a session with a second factor (aal2) reach this page."""
    body = (
        "<h1>Admin</h1>"
        "<p class='lead'>This page needs a second factor: the gateway sends you to Ory to "
        "step up before you get here.</p>"
        f"<p>Signed in as {_user_html(request)}.</p>"
        + _actions("Next", ("/", "Who am I"), ("/_auth/sessions", "Your sessions"), secondary=True)
    )
    return _page("Admin (aal2)", "/admin/", body)


async def events_page(request: web.Request) -> web.Response:
    """A ticker fed by server-sent events, to show the proxy does not buffer them."""
    body = (
        "<h1>Live ticker</h1>"
        "<p class='lead'>One server-sent event a second, straight through the gateway.</p>"
        "<p class='muted'>Stream: <span id='ticker-state'>connecting…</span></p>"
        "<div class='ticker' id='ticker' role='log' aria-live='polite'></div>"
        "<noscript><p>This page needs JavaScript to open the event stream; "
        "<a href='/events/stream?count=5'>the raw stream</a> works without it.</p></noscript>"
    )
    return _page("Live ticker (SSE)", "/events", body, _TICKER_JS)


async def websocket_page(request: web.Request) -> web.Response:
    """A WebSocket echo client, to show upgrades are authorised and bridged."""
    body = (
        "<h1>WebSocket echo</h1>"
        "<p class='lead'>The server greets you by the identity it received, then echoes.</p>"
        "<form id='send' class='actions'><label for='message'>Message</label> "
        "<input type='text' id='message' autocomplete='off'> "
        "<button class='button' type='submit' disabled>Send</button></form>"
        "<div class='log' id='log' role='log' aria-live='polite'></div>"
        "<noscript><p>This page needs JavaScript to open a WebSocket.</p></noscript>"
    )
    return _page("WebSocket echo", "/ws", body, _WS_JS)


# --- streams --------------------------------------------------------------------------------


def _tick_count(request: web.Request) -> int:
    try:
        count = int(request.query.get("count", DEFAULT_TICKS))
    except ValueError:
        raise web.HTTPBadRequest(text="count must be a whole number") from None
    return max(1, min(count, MAX_TICKS))


def _first_tick(request: web.Request) -> int:
    """A reconnecting EventSource sends Last-Event-ID; carry on counting from there."""
    last = request.headers.get("Last-Event-ID", "")
    return int(last) + 1 if last.isdigit() and len(last) < 10 else 1


async def event_stream(request: web.Request) -> web.StreamResponse:
    """`data: tick N <time>` once a second, each written at once so buffering would show."""
    count, first = _tick_count(request), _first_tick(request)
    interval = request.app[TICK_INTERVAL]
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
    )
    await response.prepare(request)
    try:
        for tick in range(first, first + count):
            if tick != first:
                await asyncio.sleep(interval)
            now = datetime.now(UTC).isoformat(timespec="seconds")
            await response.write(f"id: {tick}\ndata: tick {tick} {now}\n\n".encode())
        await response.write_eof()
    except ConnectionResetError:
        pass  # the client went away: nothing left to tell it
    return response


def _reply_close_code(code: object) -> int:
    """Answer a close with the client's own code when it may be sent on the wire."""
    return code if isinstance(code, int) and code in _SENDABLE_CLOSE_CODES else WSCloseCode.OK


async def websocket_echo(request: web.Request) -> web.WebSocketResponse:
    """Greet with the identity header, echo text and bytes, close with the client's code."""
    ws = web.WebSocketResponse(autoclose=False)
    await ws.prepare(request)
    email, _ = identity_from_headers(request)
    await ws.send_str(f"hello {email or 'anonymous'}")
    while True:
        message = await ws.receive()
        if message.type is WSMsgType.TEXT:
            await ws.send_str(f"echo: {message.data}")
        elif message.type is WSMsgType.BINARY:
            await ws.send_bytes(message.data)
        elif message.type is WSMsgType.CLOSE:
            await ws.close(code=_reply_close_code(message.data), drain=False)
            break
        else:  # CLOSING, CLOSED or ERROR: the connection is already going
            break
    return ws
