"""Entry point of the dashboard: ``streamlit run app.py`` (``digitlab dashboard`` does it)."""

import streamlit as st

from digitlab.faces.dashboard import PAGES

st.set_page_config(page_title="digitlab", page_icon=":material/draw:", layout="wide")
page = st.navigation(
    [
        st.Page(PAGES / "data.py", title="Data", icon=":material/dataset:", default=True),
        st.Page(PAGES / "preprocess.py", title="Preprocessing", icon=":material/tune:"),
        st.Page(PAGES / "models.py", title="Models and comparison", icon=":material/leaderboard:"),
        st.Page(PAGES / "evaluation.py", title="Evaluation", icon=":material/grid_on:"),
        st.Page(PAGES / "tuning.py", title="Tuning", icon=":material/manage_search:"),
        st.Page(PAGES / "augmentation.py", title="Augmentation", icon=":material/auto_fix_high:"),
        st.Page(PAGES / "try_it.py", title="Try it", icon=":material/draw:"),
        st.Page(PAGES / "read_number.py", title="Read a number", icon=":material/pin:"),
        st.Page(PAGES / "map.py", title="Map of all digits", icon=":material/scatter_plot:"),
        st.Page(PAGES / "your_digits.py", title="Your digits", icon=":material/person_edit:"),
        st.Page(PAGES / "history.py", title="History", icon=":material/history:"),
    ]
)
page.run()
