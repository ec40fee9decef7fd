"""What the Layers & model page shows: file names instead of server paths, the layer table, paper links."""
from __future__ import annotations

import re
from pathlib import PurePath
from typing import Optional, Sequence

from explainers.layers import LayerInfo

_LINKS = ((re.compile(r"arXiv:(\d{4}\.\d{4,5})"), "https://arxiv.org/abs/{}"),
          (re.compile(r"doi:(\S+)"), "https://doi.org/{}"),
          (re.compile(r"\b(hal-\d+)"), "https://hal.science/{}"))


def file_name(path: Optional[str]) -> str:
    """Only the file's name: a browser user never sees where the server keeps its files."""
    return PurePath(path).name if path else "built in"


def paper_link(reference: str) -> str:
    """The paper's address from its arXiv id, DOI or HAL id in ``reference``; "" when it has none."""
    for pattern, address in _LINKS:
        found = pattern.search(reference)
        if found:
            return address.format(found.group(1).rstrip(".,"))
    return ""


def short_citation(reference: str) -> str:
    """The reference without its identifier: 'Selvaraju et al., ICCV 2017'."""
    return re.sub(r",?\s*(arXiv:\S+|doi:\S+|hal-\d+)", "", reference).strip(" ,")


def layer_rows(infos: Sequence[LayerInfo], search: str = "", every_module: bool = False,
               grids: dict | None = None) -> list[dict]:
    """Rows of the layer table: modules with a map of their own (or all), whose name or type holds ``search``;
    ``grids`` (token models) gives the (h, w) map each layer becomes."""
    needle = search.strip().lower()
    rows = []
    for i in infos:
        if not (every_module or i.makes_own_map or i.recommended):
            continue
        if needle and needle not in i.name.lower() and needle not in i.type.lower():
            continue
        rows.append({"layer": i.name, "type": i.type, "output shape": " × ".join(map(str, i.output_shape)),
                     "recommended": "★" if i.recommended else "",
                     "own map": _own_map(i),
                     "map grid": " × ".join(map(str, (grids or {}).get(i.name, ())))})
    return rows


def _own_map(info: LayerInfo) -> str:
    if info.same_map_as:
        return f"same as {info.same_map_as}"
    if not info.makes_own_map:
        return "no"
    return "yes" if len(info.output_shape) in (3, 4) else "no map: not a grid"
