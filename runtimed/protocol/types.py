"""The one alias for a JSON object as the code base passes it around.

Owns ``JSON``. Must not import anything from runtimed (it is the leaf every
other module may import).
"""

from __future__ import annotations

from typing import Any

JSON = dict[str, Any]
