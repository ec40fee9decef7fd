"""One place that turns any error into a plain sentence in st.error (never a traceback)."""
from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Iterator

import streamlit as st

from explainers.errors import ExplainerError

log = logging.getLogger("camscope.app")
UNEXPECTED = "Something went wrong while drawing this page. Try another setting; the details are in the server log."


@contextmanager
def shown_as_error() -> Iterator[None]:
    """Show engine errors as their own sentence, anything else as a generic one (logged).

    Streamlit's own control flow (st.stop, st.rerun) derives from BaseException and passes through.
    """
    try:
        yield
    except ExplainerError as error:
        st.error(str(error))
    except Exception:
        log.exception("unexpected error in the app")
        st.error(UNEXPECTED)
