"""Streamlit glue for the app: state keys, cached loaders, shared widgets and panels."""
