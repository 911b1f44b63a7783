"""The one function that turns a server's configuration template into the file the server reads."""
from pathlib import Path

import jinja2

_TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
    autoescape=False,
)


def render(template: str, **context) -> str:
    """Renders templates/<template>; a variable the template uses but the caller omits is an error."""
    return _TEMPLATES.get_template(template).render(**context)
