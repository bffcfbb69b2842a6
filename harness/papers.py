"""arXiv identifiers, checked in one place (experiments' papers and `paper` provenance of references)."""
from __future__ import annotations

import re

_ARXIV_ID = re.compile(r"\d{4}\.\d{4,5}")


def is_arxiv_id(text: str) -> bool:
  """A new-style arXiv id such as 1912.13053 (no version suffix)."""
  return isinstance(text, str) and _ARXIV_ID.fullmatch(text) is not None
