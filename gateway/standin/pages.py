"""The stand-in's own UI pages: small, self-contained, readable on a phone."""

from __future__ import annotations

from html import escape

_STYLE = """
:root { color-scheme: light dark; --accent: #3b5bdb; }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif;
       display: flex; justify-content: center; padding: 1.5rem 1rem; }
main { width: 100%; max-width: 24rem; }
h1 { font-size: 1.5rem; margin: 0 0 1rem; }
form { display: grid; gap: 0.75rem; }
label { display: grid; gap: 0.25rem; font-weight: 600; }
input { font: inherit; padding: 0.6rem 0.7rem; border: 1px solid #868e96; border-radius: 6px;
        width: 100%; }
input:focus { outline: 3px solid var(--accent); outline-offset: 1px; }
button { font: inherit; font-weight: 600; padding: 0.7rem; border: 0; border-radius: 6px;
         background: var(--accent); color: #fff; cursor: pointer; }
.alert { border-left: 4px solid #e03131; padding: 0.5rem 0.75rem; background: #e031311a; }
.hint { font-size: 0.9rem; color: #868e96; }
"""


def _document(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n"
        f"<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n"
    )


def _field(name: str, label: str, attributes: str, value: str = "", required: bool = True) -> str:
    value_attr = f' value="{escape(value)}"' if value else ""
    required_attr = " required" if required else ""
    return (
        f'<label for="{name}">{escape(label)}'
        f'<input id="{name}" name="{name}" {attributes}{value_attr}{required_attr}></label>'
    )


def login_page(
    *, action: str, email: str, password_optional: bool, ask_code: bool, error: str, hint: str
) -> str:
    """The login form; a step-up adds a one-time code field (its password is optional,
    the session already has the first factor)."""
    if ask_code:
        title = "Confirm with your second factor"
    elif email:
        title = "Confirm it's you"
    else:
        title = "Sign in"
    parts = [f"<h1>{escape(title)}</h1>"]
    if error:
        parts.append(f'<p class="alert" role="alert">{escape(error)}</p>')
    fields = [_field("email", "Email", 'type="email" autocomplete="username"', email)]
    fields.append(
        _field(
            "password",
            "Password (optional)" if password_optional else "Password",
            'type="password" autocomplete="current-password"',
            required=not password_optional,
        )
    )
    if ask_code:
        fields.append(
            _field(
                "code",
                "One-time code (6 digits)",
                'type="text" inputmode="numeric" pattern="[0-9]{6}" maxlength="6" '
                'autocomplete="one-time-code"',
            )
        )
    parts.append(
        f'<form method="post" action="{escape(action)}">'
        + "".join(fields)
        + '<button type="submit">Continue</button></form>'
    )
    if hint:
        parts.append(f'<p class="hint">{escape(hint)}</p>')
    return _document(title, "\n".join(parts))


def error_page(*, title: str, message: str, login_url: str) -> str:
    body = (
        f"<h1>{escape(title)}</h1>\n"
        f'<p class="alert" role="alert">{escape(message)}</p>\n'
        f'<p><a href="{escape(login_url)}">Start again</a></p>'
    )
    return _document(title, body)


def home_page(*, login_url: str) -> str:
    body = (
        "<h1>Ory stand-in</h1>\n<p>This is where Kratos sends you when no return address was"
        f' given.</p>\n<p><a href="{escape(login_url)}">Sign in</a></p>'
    )
    return _document("Ory stand-in", body)
