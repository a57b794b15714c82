"""The Streamlit dashboard: ``digitlab dashboard`` runs ``app.py`` with ``streamlit run``.

Every page reads a run folder (JSON, figures, saved models); nothing is retrained at start.
"""

from pathlib import Path

APP = Path(__file__).with_name("app.py")
PAGES = Path(__file__).with_name("sections")  # not "pages": Streamlit would list that folder itself
